"""WeChat Official Account (公众号) adapter: residents' front door."""
