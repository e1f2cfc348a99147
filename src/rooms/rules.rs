//! The role table of managed rooms as plain functions: who may send, add,
//! remove, mute, change roles and settings, delete. Each refusal says why;
//! the caller turns it into `FORBIDDEN`.
//!
//! | action | who |
//! | --- | --- |
//! | send | a member; in a `broadcast` room an `admin`; not when muted |
//! | add | `admin` (adding an `owner`: `owner`); never in a `dm` room |
//! | remove, mute / unmute | `moderator`, on members of a lower role; anyone on themselves (removing or muting, not unmuting) |
//! | change a role, update the room | `admin`, on members of a lower role (making an `owner`: `owner`) |
//! | delete the room | `owner` |
//! | edit a message | its author only |
//! | delete a message | its author, or `moderator` |
//!
//! A token with `role: "admin"` (and the admin HTTP API) acts above every
//! role ([`Acting::Operator`]).

use crate::protocol::{Role, RoomType};

/// Who acts in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acting {
    /// A stored member with this role.
    Member(Role),
    /// Not a member.
    Outsider,
    /// A token with `role: "admin"`, or the admin API: may do everything.
    Operator,
}

impl Acting {
    pub fn of(role: Option<Role>, operator: bool) -> Self {
        match (operator, role) {
            (true, _) => Acting::Operator,
            (false, Some(role)) => Acting::Member(role),
            (false, None) => Acting::Outsider,
        }
    }

    /// Rank: outsiders 0, member 1 … owner 4, operators 5.
    fn rank(self) -> u8 {
        match self {
            Acting::Outsider => 0,
            Acting::Member(role) => rank(role),
            Acting::Operator => 5,
        }
    }

    fn at_least(self, role: Role) -> bool {
        self.rank() >= rank(role)
    }

    fn above(self, role: Role) -> bool {
        self.rank() > rank(role)
    }
}

fn rank(role: Role) -> u8 {
    match role {
        Role::Member => 1,
        Role::Moderator => 2,
        Role::Admin => 3,
        Role::Owner => 4,
    }
}

pub type Verdict = Result<(), &'static str>;

/// `message:send` by a member (`muted`) or not.
pub fn may_send(kind: RoomType, acting: Acting, muted: bool) -> Verdict {
    match acting {
        Acting::Operator => Ok(()),
        Acting::Outsider => Err("not a member of this room"),
        Acting::Member(_) if muted => Err("you are muted in this room"),
        Acting::Member(role) if kind == RoomType::Broadcast && role < Role::Admin => {
            Err("only admins may send in a broadcast room")
        }
        Acting::Member(_) => Ok(()),
    }
}

pub fn may_add(kind: RoomType, acting: Acting, role: Role) -> Verdict {
    if kind == RoomType::Dm {
        return Err("a dm room has exactly its two users");
    }
    if !acting.at_least(Role::Admin) {
        return Err("adding members needs role admin");
    }
    if role == Role::Owner && !acting.at_least(Role::Owner) {
        return Err("making an owner needs role owner");
    }
    Ok(())
}

/// `member:remove` of `target` (with `target_role`); `itself`: the actor
/// removes themselves.
pub fn may_remove(acting: Acting, itself: bool, target_role: Role) -> Verdict {
    if itself {
        return Ok(());
    }
    if !acting.at_least(Role::Moderator) {
        return Err("removing members needs role moderator");
    }
    if !acting.above(target_role) {
        return Err("only members of a lower role than yours can be removed");
    }
    Ok(())
}

/// Muting (`muted`) or unmuting `target`.
pub fn may_mute(acting: Acting, itself: bool, target_role: Role, muted: bool) -> Verdict {
    if itself && muted {
        return Ok(());
    }
    if !acting.at_least(Role::Moderator) {
        return Err(if itself {
            "unmuting yourself needs a moderator above you"
        } else {
            "muting members needs role moderator"
        });
    }
    if !acting.above(target_role) {
        return Err(if itself {
            "unmuting yourself needs a moderator above you"
        } else {
            "only members of a lower role than yours can be muted or unmuted"
        });
    }
    Ok(())
}

/// Changing `target_role` into `role`.
pub fn may_set_role(acting: Acting, target_role: Role, role: Role) -> Verdict {
    if !acting.at_least(Role::Admin) {
        return Err("changing roles needs role admin");
    }
    if role == Role::Owner && !acting.at_least(Role::Owner) {
        return Err("making an owner needs role owner");
    }
    // An owner may change anyone's role, other owners' included.
    if !acting.above(target_role) && !acting.at_least(Role::Owner) {
        return Err("only the roles of members below yours can be changed");
    }
    Ok(())
}

pub fn may_update_room(acting: Acting) -> Verdict {
    if acting.at_least(Role::Admin) {
        Ok(())
    } else {
        Err("changing the room's settings needs role admin")
    }
}

pub fn may_delete_room(acting: Acting) -> Verdict {
    if acting.at_least(Role::Owner) {
        Ok(())
    } else {
        Err("deleting the room needs role owner")
    }
}

/// `message:edit`: the author's words stay the author's.
pub fn may_edit_message(author: bool) -> Verdict {
    if author {
        Ok(())
    } else {
        Err("only the author may edit a message")
    }
}

/// `message:delete`. In an ad hoc room nobody has a role, so besides the
/// author only an operator (token role admin) may.
pub fn may_delete_message(acting: Acting, author: bool) -> Verdict {
    if author || acting.at_least(Role::Moderator) {
        Ok(())
    } else {
        Err("deleting another user's message needs role moderator")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Role::*;

    const ALL: [Role; 4] = [Member, Moderator, Admin, Owner];

    fn m(role: Role) -> Acting {
        Acting::Member(role)
    }

    #[test]
    fn sending_needs_membership_no_mute_and_admin_in_broadcast_rooms() {
        for role in ALL {
            assert!(may_send(RoomType::Channel, m(role), false).is_ok());
            assert_eq!(
                may_send(RoomType::Group, m(role), true),
                Err("you are muted in this room")
            );
            assert_eq!(
                may_send(RoomType::Broadcast, m(role), false).is_ok(),
                role >= Admin
            );
        }
        assert!(may_send(RoomType::Channel, Acting::Outsider, false).is_err());
        assert!(may_send(RoomType::Broadcast, Acting::Operator, false).is_ok());
    }

    #[test]
    fn adding_needs_admin_and_an_owner_for_owners() {
        for role in ALL {
            assert_eq!(
                may_add(RoomType::Group, m(role), Member).is_ok(),
                role >= Admin
            );
            assert_eq!(
                may_add(RoomType::Group, m(role), Owner).is_ok(),
                role == Owner
            );
        }
        assert!(may_add(RoomType::Group, Acting::Outsider, Member).is_err());
        assert!(may_add(RoomType::Dm, m(Owner), Member).is_err());
        assert!(may_add(RoomType::Dm, Acting::Operator, Member).is_err());
    }

    #[test]
    fn removing_and_muting_need_a_moderator_above_the_target() {
        for actor in ALL {
            for target in ALL {
                let allowed = actor >= Moderator && actor > target;
                assert_eq!(may_remove(m(actor), false, target).is_ok(), allowed);
                assert_eq!(may_mute(m(actor), false, target, true).is_ok(), allowed);
                assert_eq!(may_mute(m(actor), false, target, false).is_ok(), allowed);
            }
            // anyone on themselves: leaving for good, or muting
            assert!(may_remove(m(actor), true, actor).is_ok());
            assert!(may_mute(m(actor), true, actor, true).is_ok());
            assert!(may_mute(m(actor), true, actor, false).is_err());
        }
        assert!(may_remove(Acting::Operator, false, Owner).is_ok());
    }

    #[test]
    fn roles_change_by_admins_below_them_and_owners_for_owners() {
        for actor in ALL {
            for target in ALL {
                for to in ALL {
                    let allowed = actor >= Admin
                        && (to != Owner || actor == Owner)
                        && (actor > target || actor == Owner);
                    assert_eq!(
                        may_set_role(m(actor), target, to).is_ok(),
                        allowed,
                        "{actor:?} {target:?} -> {to:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn settings_need_admin_and_deletion_an_owner() {
        for role in ALL {
            assert_eq!(may_update_room(m(role)).is_ok(), role >= Admin);
            assert_eq!(may_delete_room(m(role)).is_ok(), role == Owner);
        }
        assert!(may_update_room(Acting::Outsider).is_err());
        assert!(may_delete_room(Acting::Operator).is_ok());
    }

    #[test]
    fn messages_are_edited_by_their_author_and_deleted_by_moderators() {
        assert!(may_edit_message(true).is_ok());
        assert!(may_edit_message(false).is_err());
        for role in ALL {
            assert!(may_delete_message(m(role), true).is_ok());
            assert_eq!(
                may_delete_message(m(role), false).is_ok(),
                role >= Moderator
            );
        }
        assert!(may_delete_message(Acting::Outsider, true).is_ok());
        assert!(may_delete_message(Acting::Outsider, false).is_err());
        assert!(may_delete_message(Acting::Operator, false).is_ok());
    }
}
