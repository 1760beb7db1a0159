//! When a key signs, verifies and is published, decided from the stored rows alone so that
//! every gateway sharing the database reaches the same answer without talking to the others.
//!
//! A key signs from its `signs_from` time (its creation plus `[tokens] key_publish_delay`)
//! until a newer key takes over; it is published from its creation, so consumers that
//! cache the JWK Set know it before they see a token signed with it. After a newer key
//! takes over, the old one keeps verifying (and stays published) until every token it
//! signed has expired: the takeover time plus the longest token lifetime plus the leeway.
//! A retired key does none of these, at once.

/// What the schedule needs to know about one stored key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyWindow {
    pub signs_from: i64,
    pub retired: bool,
}

/// The index of the key that signs at `now`: the newest live key whose `signs_from` has
/// come. When none has come yet (the signing key was retired while its successor waits),
/// the successor signs at once: better early than no signature at all.
pub fn signer(keys: &[KeyWindow], now: i64) -> Option<usize> {
    let live = || keys.iter().enumerate().filter(|(_, k)| !k.retired);
    live()
        .filter(|(_, k)| k.signs_from <= now)
        .max_by_key(|(i, k)| (k.signs_from, *i))
        .or_else(|| live().min_by_key(|(i, k)| (k.signs_from, *i)))
        .map(|(i, _)| i)
}

/// When key `index` stops signing: the `signs_from` of the first live key after it, or
/// `None` while no newer key exists.
pub fn signing_ends(keys: &[KeyWindow], index: usize) -> Option<i64> {
    let me = keys.get(index)?;
    keys.iter()
        .enumerate()
        .filter(|(i, k)| !k.retired && *i != index && (k.signs_from, *i) > (me.signs_from, index))
        .map(|(_, k)| k.signs_from)
        .min()
}

/// The last second at which a token signed by a key that stopped signing at `ended` can
/// still be valid: `ended` plus the longest token lifetime plus the leeway.
pub fn verifies_until(ended: Option<i64>, longest_ttl: i64, leeway: i64) -> Option<i64> {
    ended.map(|e| e.saturating_add(longest_ttl).saturating_add(leeway))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(signs_from: i64) -> KeyWindow {
        KeyWindow {
            signs_from,
            retired: false,
        }
    }

    #[test]
    fn a_new_key_signs_only_after_its_publish_delay() {
        let keys = [key(100), key(500)];
        assert_eq!(signer(&keys, 499), Some(0));
        assert_eq!(signer(&keys, 500), Some(1));
        assert_eq!(signing_ends(&keys, 0), Some(500));
        assert_eq!(signing_ends(&keys, 1), None);
        assert_eq!(verifies_until(Some(500), 3600, 5), Some(4105));
        assert_eq!(verifies_until(None, 3600, 5), None);
    }

    #[test]
    fn retiring_the_signer_hands_over_to_the_next_key_at_once() {
        let keys = [
            KeyWindow {
                signs_from: 100,
                retired: true,
            },
            key(500),
        ];
        assert_eq!(signer(&keys, 200), Some(1));
        let keys = [
            key(100),
            KeyWindow {
                signs_from: 500,
                retired: true,
            },
        ];
        assert_eq!(
            signer(&keys, 600),
            Some(0),
            "a retired successor never signs"
        );
        assert_eq!(signing_ends(&keys, 0), None);
    }

    #[test]
    fn nothing_signs_when_every_key_is_retired() {
        let keys = [KeyWindow {
            signs_from: 1,
            retired: true,
        }];
        assert_eq!(signer(&keys, 10), None);
        assert_eq!(signer(&[], 10), None);
    }
}
