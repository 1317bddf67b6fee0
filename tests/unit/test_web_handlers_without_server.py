"""Handlers are plain functions of a request view: they run here without a server or a framework."""

from __future__ import annotations

import pytest
from fake_request import FakeRequest, authentication

from kubegate.server.path_method import MethodList
from kubegate.server.path_verify import GROUPS_HEADER, USER_HEADER, ForwardAuth
from kubegate.web.errors import ApiProblem
from kubegate.web.request import caller


async def test_forward_auth_answers_with_identity_headers() -> None:
    response = await ForwardAuth().verify(FakeRequest(authentication=authentication("dev", "ops")))
    assert response.status == 200
    assert response.headers[USER_HEADER] == "statictoken:team:app"
    assert response.headers[GROUPS_HEADER] == "dev,ops"


async def test_forward_auth_refuses_a_missing_group_from_the_query() -> None:
    request = FakeRequest(authentication=authentication("dev"), query_pairs=[("group", "dev"), ("group", "ops")])
    with pytest.raises(ApiProblem) as refused:
        await ForwardAuth().verify(request)
    assert refused.value.status == 403
    assert refused.value.message.endswith("is not a member of the required groups ops")


async def test_forward_auth_ignores_the_proxied_clients_query_under_its_prefix() -> None:
    request = FakeRequest(
        authentication=authentication(), params={"tail": "app/page"}, query_pairs=[("group", "admins")]
    )
    assert (await ForwardAuth().verify(request)).status == 200


async def test_method_list_says_which_methods_are_on() -> None:
    response = await MethodList(kubernetes_enabled=True).list_methods(FakeRequest())
    assert b'"method":"METHOD_KUBERNETES","enabled":true' in response.body


def test_a_handler_on_a_public_route_cannot_read_aauthentication() -> None:
    with pytest.raises(RuntimeError, match="public route"):
        caller(FakeRequest())
