"""HTTP: the public listener that Exchange and Graph post to."""
