//! Skill and target names: the one rule (`^[a-z0-9]+(-[a-z0-9]+)*$`, at
//! most [`MAX_LEN`] characters) and the message that explains it.
//!
//! A leaf: it imports nothing from the crate, so the config, the state
//! file and SkillCards can all use it.

/// Longest accepted skill or target name.
pub const MAX_LEN: usize = 64;

/// How to write a valid name.
const RULE: &str =
    "use lowercase letters and digits in words joined by single hyphens (like \"hello-world\")";

/// Whether `name` is a valid skill or target name.
pub fn is_valid(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_LEN
        && name.split('-').all(|w| {
            !w.is_empty()
                && w.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

/// Checks a name; the error says what is wrong and how to fix it.
pub fn check(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err(format!("it is empty; {RULE}"));
    }
    if name.len() > MAX_LEN {
        return Err(format!(
            "it is {} characters long; the limit is {MAX_LEN}",
            name.len()
        ));
    }
    if is_valid(name) {
        Ok(())
    } else {
        Err(RULE.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["a", "a1-b2-c3", "0", &"a".repeat(64)] {
            assert!(is_valid(good) && check(good).is_ok(), "{good}");
        }
        for bad in ["", "a.b", "é", "-a", "a-", "a--b", "A", &"a".repeat(65)] {
            assert!(!is_valid(bad) && check(bad).is_err(), "{bad}");
        }
        assert!(check("").unwrap_err().starts_with("it is empty; "));
        assert_eq!(
            check(&"a".repeat(65)).unwrap_err(),
            "it is 65 characters long; the limit is 64"
        );
    }
}
