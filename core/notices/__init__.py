"""Notices (通知): a message down the tree to chosen tiers of a subtree, with read receipts."""
