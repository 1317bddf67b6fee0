"""The metadata keys kubegate sets on an authentication: Flipt's keys, with kubegate's prefix. Pure.

Every surface shows them (`/auth/v1/self`, TokenReview extras, forward-auth headers); users may not set
keys under the prefix themselves.
"""

from __future__ import annotations

RESERVED_PREFIX = "io.kubegate.auth."

TOKEN_NAME = "io.kubegate.auth.token.name"
TOKEN_DESCRIPTION = "io.kubegate.auth.token.description"

K8S_NAMESPACE = "io.kubegate.auth.k8s.namespace"
K8S_POD_NAME = "io.kubegate.auth.k8s.pod.name"
K8S_POD_UID = "io.kubegate.auth.k8s.pod.uid"
K8S_SERVICEACCOUNT_NAME = "io.kubegate.auth.k8s.serviceaccount.name"
K8S_SERVICEACCOUNT_UID = "io.kubegate.auth.k8s.serviceaccount.uid"
