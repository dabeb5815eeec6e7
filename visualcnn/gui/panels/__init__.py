"""Panels of the Train and Draw tabs: curves, filters, feature maps, confusion, draw-a-digit."""
