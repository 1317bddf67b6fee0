"""kubegate: Kubernetes-native API authentication."""

__version__ = "0.1.0"
