"""One module per dataset; each exposes ``SOURCE`` or ``make_source(params)``."""
