"""The kubegate operator: reconciles StaticTokens into Secrets and the validation config (kopf)."""
