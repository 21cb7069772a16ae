"""What a document will cost and how long its answer may be cached, worked out before it runs."""
