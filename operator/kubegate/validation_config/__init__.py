"""The validation config: what the server needs to check static tokens, without their plaintext.

The operator writes it as sharded Secrets in its namespace; every server replica watches them.
"""
