"""Corrections: what a cancel, a changed discharge, a late original and a merge do to events,
deliveries and follow-ups.

    rules.py    the rules, pure: a prepared event and what is known of earlier ones -> a Decision
    lookup.py   Corrections.linked_in(batch, history): asks the history what the rules need
                (inside intake's write), applies the decisions

The store only executes what was decided (`engine.store`'s intake write).
"""

from engine.corrections.lookup import Corrections

__all__ = ["Corrections"]
