"""The tag factory: the operator's RFM rules (`rules`), k-means and predictions (`models`), and
the run that writes every member's tags (`factory.compute_tags`)."""

from cloud_stub.tags.factory import STATIC_KINDS, TAG_TTL_MS, TagRun, compute_tags

__all__ = ["STATIC_KINDS", "TAG_TTL_MS", "TagRun", "compute_tags"]
