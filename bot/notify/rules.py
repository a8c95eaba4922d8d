"""Who hears of what: one row per case event kind, read top to bottom.

Audiences:
  residents    the case's followers (the reporter, and reporters of merged duplicates)
  holder       the holder after the event
  previous     the holder before a hand-over (escalated, whistled, reassigned)
  taken_from   a holder whose case a superior took over by acting on it
  tier_chats   the group chats bound to the tier above the (new) holder (masked copies)
  superior     the next filled tier above the holder
  informed     the people a routing rule informs (知会; the event's detail "inform")

`card` messages are the case's live cards (one per chat, kept current by LIVE events);
`digest` messages to one person in one batch (a sweep) are folded into one digest.
Nobody is told of what they did themselves (the flow's own reply tells them); their card is
still kept current.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.cases.model import EventKind as K


@dataclass(frozen=True)
class Rule:
    audience: str
    message: str  # the render function in bot/notify/messages.py
    digest: bool = False
    card: bool = False
    echo: bool = False  # told even when they caused it (the receipt of one's own report)


def r(audience: str, message: str, *, digest: bool = False, card: bool = False,
      echo: bool = False) -> Rule:
    return Rule(audience, message, digest, card, echo)


_HAND_OVER = (r("holder", "card", card=True), r("previous", "moved_away", digest=True),
              r("residents", "progress"), r("tier_chats", "card", card=True))

RULES: dict[str, tuple[Rule, ...]] = {
    K.opened:        (r("holder", "card", card=True), r("residents", "receipt", echo=True),
                      r("tier_chats", "card", card=True)),
    K.added:         (r("holder", "added"),),
    K.accepted:      (r("residents", "accepted"), r("taken_from", "taken_over")),
    K.reported_in:   (r("residents", "accepted"), r("taken_from", "taken_over")),
    K.replied:       (r("residents", "replied"),),
    K.asked_more:    (r("residents", "asked_more"),),
    K.resolved:      (r("residents", "resolved"), r("taken_from", "taken_over")),
    K.escalated:     _HAND_OVER,
    K.whistled:      _HAND_OVER,
    K.reassigned:    _HAND_OVER,
    # A routing rule: at opening the `opened` row already carries the card and the receipt.
    K.routed:        (r("informed", "routed_info"),),
    K.rerouted:      (*_HAND_OVER, r("informed", "routed_info")),
    # 核查: the verifier gets the card with the photos; the one who solved it hears the outcome.
    K.verify_requested: (r("holder", "card", card=True), r("tier_chats", "card", card=True)),
    K.verified:      (r("holder", "verified"),),
    K.sent_back:     (r("holder", "sent_back"),),
    K.nagged:        (r("holder", "nag", digest=True), r("residents", "confirm_reminder")),
    K.overdue:       (r("holder", "overdue", digest=True),),
    K.auto_closed:   (r("holder", "auto_closed_holder", digest=True),
                      r("residents", "auto_closed")),
    K.confirmed:     (r("holder", "rated"), r("superior", "low_rating"),
                      r("residents", "closed")),
    K.reopened:      (r("holder", "reopened"), r("residents", "reopened_ack")),
    K.merged:        (r("residents", "merged"),),
    K.rejected:      (r("residents", "rejected"),),
    K.holder_unreachable:   (r("superior", "holder_unreachable", digest=True),),
    K.resident_unreachable: (r("holder", "resident_unreachable"),),
    # merged_in, categorized, refused, purged: the timeline only (categorized and merged_in
    # still refresh the cards: LIVE).
}

# Events after which every copy of the case's card is brought up to date.
LIVE = frozenset({
    K.accepted, K.reported_in, K.replied, K.asked_more, K.resolved, K.escalated, K.whistled,
    K.reassigned, K.rerouted, K.verify_requested, K.verified, K.sent_back,
    K.confirmed, K.reopened, K.auto_closed, K.merged, K.rejected,
    K.resident_unreachable,
    K.merged_in,  # N 人反映 went up
    K.categorized,  # the category's 常用答复 buttons, and a deadline it may have moved
})

# Notices (core/notices): who hears of each notice event, rendered by bot/notify/notices.py.
#   recipients   everybody the notice was sent to (their first copy, with the 收到 button)
#   unconfirmed  recipients who have not said 收到 and were not given up as unreachable
#   superiors    the next filled tier above each unconfirmed recipient: one list each
NOTICE_RULES: dict[str, tuple[Rule, ...]] = {
    "sent":      (r("recipients", "notice"),),
    "repinged":  (r("unconfirmed", "notice_reping"),),
    "deadline":  (r("superiors", "notice_missing"),),
    # confirmed: the receipt only (the presser's own answer tells them; the board counts it).
}


# Campaign events (core/campaigns): who hears of them. Audiences:
#   leaders_all     every 邻长 with households in the campaign (their checklist)
#   leaders_behind  the 邻长 with less than half of their households recorded (half time)
#   group_leaders   each 组长 with 邻长 not done, one list of them (the deadline)
#   above_item      the first leader above the household's 邻 (a new person to confirm)
CAMPAIGN_RULES: dict[str, tuple[Rule, ...]] = {
    "started":  (r("leaders_all", "cmp_started"),),
    "nagged":   (r("leaders_behind", "cmp_nag", digest=True),),
    "deadline": (r("group_leaders", "cmp_deadline", digest=True),),
    "newcomer": (r("above_item", "cmp_newcomer"),),
}
