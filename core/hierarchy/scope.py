"""Who may write what in the tree: the one scope rule every administrative write is checked
against (chat, dashboard, API and chat imports; only the operator's console is unlimited).

- An actor writes only through their admin posts, and only inside the subtree of one of them.
- A post may be given (or changed) only where it ranks below that admin post: a town admin
  appoints village 书记 and below, never another town or district admin, nor an admin on
  their own town.
- A node may be added, renamed, moved or re-levelled only strictly below the actor's node,
  and must stay there.
- A person's name and chat accounts may be changed only by someone who could appoint every
  post that person holds (someone with posts in two subtrees is edited from above both).
"""

from __future__ import annotations

from collections.abc import Iterable

from core.errors import Phrase, phrase
from core.hierarchy.model import Level, Role
from core.hierarchy.queries import Actor, NodeRef

# district admin > town admin > village admin / 书记 > 片长 > 组长 > 邻长 > resident
_ADMIN_RANK: dict[Level, int] = {
    Level.district: 70, Level.town: 60, Level.village: 50, Level.department: 50,
    Level.area: 40, Level.group: 30, Level.neighborhood: 20,
}
_ROLE_RANK: dict[Role, int] = {
    Role.secretary: 50, Role.area_leader: 40, Role.group_leader: 30,
    Role.neighbor_leader: 20, Role.resident: 10,
    # A department sits under the town or district that holds its node, with a village's rank.
    Role.department: 50,
}
OUTSIDE = phrase("scope_outside")
TOO_HIGH = phrase("scope_too_high")


def rank(role: Role, level: Level) -> int:
    """How high a post stands; an admin's rank is the rank of the node they administer."""
    if role is Role.admin:
        return _ADMIN_RANK[level]
    return _ROLE_RANK[role]


def appoint_refusal(who: Actor | None, role: Role, node: NodeRef | str, level: Level) -> \
        Phrase | None:
    """Why `who` may not give (or change) a `role` post on the node, or None when they may;
    `who` None is the operator at the console. `node` may be a path (for nodes not yet
    written)."""
    if who is None:
        return None
    scopes = [n for n in who.admin_scopes() if n.contains(node)]
    if not scopes:
        return OUTSIDE
    wanted = rank(role, level)
    if any(wanted < rank(Role.admin, s.level) for s in scopes):
        return None
    return TOO_HIGH


def may_appoint(who: Actor | None, role: Role, node: NodeRef) -> bool:
    """Whether `who` may give a `role` post on `node` (see the module's rule)."""
    return appoint_refusal(who, role, node, node.level) is None


def may_edit_person(who: Actor | None, posts: Iterable[tuple[Role, NodeRef | str, Level]]) -> \
        bool:
    """Whether `who` may change a person's name, phone, chat accounts or password: they could
    appoint every post the person holds."""
    return all(appoint_refusal(who, r, n, lv) is None for r, n, lv in posts)


def node_refusal(who: Actor | None, *, before: str | None, after: str) -> Phrase | None:
    """Why `who` may not add or change a node (stored path `before`, None for a new node; path
    `after` once written), or None: both must lie strictly below one of their admin nodes."""
    if who is None:
        return None
    for s in who.admin_scopes():
        inside_after = after.startswith(s.path) and after != s.path
        inside_before = before is None or (before.startswith(s.path) and before != s.path)
        if inside_after and inside_before:
            return None
    return phrase("scope_node")


def may_bind(who: Actor, node: NodeRef) -> bool:
    """A chat group is bound to a node (or moved off one) by an admin of that node's subtree;
    a binding is no post, so an admin's own node is allowed."""
    return who.is_admin_of(node)


# Who may send a notice down the tree from a node: an admin of it, or the 书记, 片长 or 组长
# of it or above it (on their own subtree).
_NOTICE_SENDERS = frozenset({Role.secretary, Role.area_leader, Role.group_leader})


def notice_refusal(who: Actor | None, node: NodeRef) -> Phrase | None:
    """Why `who` may not send a notice to `node`'s subtree, or None when they may."""
    if who is None or who.is_admin_of(node):
        return None
    if any(r in _NOTICE_SENDERS and n.contains(node) for r, n in who.posts):
        return None
    return OUTSIDE


def notice_nodes(who: Actor) -> list[NodeRef]:
    """The nodes from which `who` may send notices, widest first."""
    nodes = [n for r, n in who.posts if r is Role.admin or r in _NOTICE_SENDERS]
    return sorted({n.id: n for n in nodes}.values(), key=lambda n: (n.path.count("/"), n.path))
