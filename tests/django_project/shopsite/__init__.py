"""A small Django shop (the storefront shape of examples/storefront/) for trueup's Django tests."""
