"""HTTP surfaces: each translates one client dialect to the service and back."""
