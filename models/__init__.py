"""Hand-written networks (installed as ``tinycnn.models``)."""
