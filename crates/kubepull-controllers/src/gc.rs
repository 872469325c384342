//! Garbage collection of dependents through ownerReferences.
//!
//! Ported in reduced form from upstream `pkg/controller/garbagecollector/garbagecollector.go`
//! (`attemptToDeleteItem`, `processDeletingDependentsItem`, `orphanDependents`): a dependent whose
//! owners are all gone is deleted in the background; an owner being deleted with the
//! `foregroundDeletion` finalizer has its blocking dependents deleted first and loses the finalizer
//! when none remain; an owner with the `orphan` finalizer has its references removed from its
//! dependents, then loses the finalizer.

use std::collections::HashSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// Finalizer for foreground cascading deletion.
pub const FOREGROUND: &str = "foregroundDeletion";
/// Finalizer for orphaning dependents.
pub const ORPHAN: &str = "orphan";

/// What to do with one dependent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DependentAction {
    /// Leave it alone.
    Keep,
    /// Delete it (background propagation): every owner is gone.
    Delete,
    /// Delete it in the foreground because a blocking owner is being deleted in the foreground.
    DeleteForeground,
    /// Remove the ownerReferences with these UIDs (their owners are orphaning).
    RemoveOwners(Vec<String>),
}

/// An owner's state as the collector sees it.
#[derive(Debug, Clone, Default)]
pub struct OwnerState {
    /// UIDs of owners that exist.
    pub live: HashSet<String>,
    /// UIDs of owners being deleted with the foreground finalizer.
    pub foreground: HashSet<String>,
    /// UIDs of owners being deleted with the orphan finalizer.
    pub orphaning: HashSet<String>,
}

/// Decides what happens to a dependent given the state of the owners.
pub fn dependent_action(meta: &ObjectMeta, owners: &OwnerState) -> DependentAction {
    let Some(refs) = meta.owner_references.as_ref().filter(|r| !r.is_empty()) else {
        return DependentAction::Keep;
    };
    if meta.deletion_timestamp.is_some() {
        return DependentAction::Keep;
    }
    let orphan: Vec<String> = refs
        .iter()
        .filter(|r| owners.orphaning.contains(&r.uid))
        .map(|r| r.uid.clone())
        .collect();
    if !orphan.is_empty() {
        return DependentAction::RemoveOwners(orphan);
    }
    if refs
        .iter()
        .any(|r| owners.foreground.contains(&r.uid) && r.block_owner_deletion == Some(true))
    {
        return DependentAction::DeleteForeground;
    }
    if refs.iter().all(|r| !owners.live.contains(&r.uid)) {
        return DependentAction::Delete;
    }
    DependentAction::Keep
}

/// Whether an owner being deleted may drop `finalizer`: no dependent still refers to it
/// (orphan) or blocks it (foreground).
pub fn may_remove_finalizer<'a>(
    owner_uid: &str,
    finalizer: &str,
    dependents: impl IntoIterator<Item = &'a ObjectMeta>,
) -> bool {
    !dependents.into_iter().any(|m| {
        m.owner_references.iter().flatten().any(|r| {
            r.uid == owner_uid && (finalizer == ORPHAN || r.block_owner_deletion == Some(true))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    fn dep(uid: &str, block: bool) -> ObjectMeta {
        ObjectMeta {
            owner_references: Some(vec![OwnerReference {
                uid: uid.into(),
                block_owner_deletion: Some(block),
                ..Default::default()
            }]),
            ..Default::default()
        }
    }

    #[test]
    fn background_deletes_only_when_owners_are_gone() {
        let mut s = OwnerState::default();
        assert_eq!(
            dependent_action(&dep("a", false), &s),
            DependentAction::Delete
        );
        s.live.insert("a".into());
        assert_eq!(
            dependent_action(&dep("a", false), &s),
            DependentAction::Keep
        );
        assert_eq!(
            dependent_action(&ObjectMeta::default(), &s),
            DependentAction::Keep
        );
    }

    #[test]
    fn foreground_deletes_blocking_dependents() {
        let mut s = OwnerState::default();
        s.live.insert("a".into());
        s.foreground.insert("a".into());
        assert_eq!(
            dependent_action(&dep("a", true), &s),
            DependentAction::DeleteForeground
        );
        assert_eq!(
            dependent_action(&dep("a", false), &s),
            DependentAction::Keep
        );
        assert!(!may_remove_finalizer("a", FOREGROUND, [&dep("a", true)]));
        assert!(may_remove_finalizer("a", FOREGROUND, [&dep("a", false)]));
    }

    #[test]
    fn orphan_removes_references() {
        let mut s = OwnerState::default();
        s.live.insert("a".into());
        s.orphaning.insert("a".into());
        assert_eq!(
            dependent_action(&dep("a", true), &s),
            DependentAction::RemoveOwners(vec!["a".into()])
        );
        assert!(!may_remove_finalizer("a", ORPHAN, [&dep("a", false)]));
        assert!(may_remove_finalizer("a", ORPHAN, [&ObjectMeta::default()]));
    }
}
