//! Name rules shared by the API (authoritative) and the provider (plan-time checks).

/// PostgreSQL's NAMEDATALEN - 1: longer identifiers would be silently truncated.
pub const MAX_IDENT_BYTES: usize = 63;
/// Length of the random part of a lease role name.
pub const LEASE_SUFFIX_LEN: usize = 8;

/// Why a name is refused; the message is shown to the caller as is.
pub type NameError = String;

pub fn validate_tenant_name(name: &str) -> Result<(), NameError> {
    validate_slug(name, 20)
}

pub fn validate_instance_name(name: &str) -> Result<(), NameError> {
    validate_slug(name, 40)
}

/// A database name, checked together with its tenant: the longest role derived from it
/// (a lease of the admin role, `<tenant>_<name>_admin_<8 random>`) must fit in 63 bytes.
pub fn validate_database_name(tenant: &str, name: &str) -> Result<(), NameError> {
    validate_slug(name, MAX_IDENT_BYTES)?;
    let longest = lease_role_len(tenant, name);
    if longest > MAX_IDENT_BYTES {
        let room = MAX_IDENT_BYTES.saturating_sub(longest - name.len());
        return Err(format!(
            "too long: role names derived from it (like \"{tenant}_{name}_admin_{}\") would be {longest} \
             bytes, PostgreSQL's limit is {MAX_IDENT_BYTES}; with tenant {tenant:?} a database name may \
             have at most {room} characters",
            "x".repeat(LEASE_SUFFIX_LEN)
        ));
    }
    Ok(())
}

fn lease_role_len(tenant: &str, name: &str) -> usize {
    tenant.len() + 1 + name.len() + 1 + "admin".len() + 1 + LEASE_SUFFIX_LEN
}

fn validate_slug(name: &str, max: usize) -> Result<(), NameError> {
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.len() > max {
        return Err(format!("must be at most {max} characters (got {})", name.len()));
    }
    let mut chars = name.chars();
    let first = chars.next().unwrap_or('a');
    if !first.is_ascii_lowercase() {
        return Err(format!("must start with a lower-case letter a-z (got {first:?}); allowed: a-z, 0-9 and '-'"));
    }
    if let Some(bad) = name.chars().find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')) {
        return Err(format!("contains {bad:?}; only lower-case a-z, digits 0-9 and '-' are allowed"));
    }
    if name.ends_with('-') || name.contains("--") {
        return Err("must not end with '-' or contain '--'".into());
    }
    Ok(())
}

/// An extension name as PostgreSQL lists them in `pg_available_extensions`.
pub fn validate_extension_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() || name.len() > MAX_IDENT_BYTES {
        return Err("must be 1 to 63 characters".into());
    }
    if !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-') {
        return Err(format!("{name:?} is not an extension name (a-z, 0-9, '_', '-')"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert!(validate_tenant_name("team-a1").is_ok());
        for bad in ["", "A", "1abc", "a b", "a;b", "a\"b", "a'b", "é", "abc-", "a--b", "aaaaaaaaaaaaaaaaaaaaa"] {
            assert!(validate_tenant_name(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn database_name_length_counts_the_longest_role() {
        let tenant = "t".repeat(20);
        // 20 + 1 + n + 1 + 5 + 1 + 8 <= 63  =>  n <= 27
        assert!(validate_database_name(&tenant, &"d".repeat(27)).is_ok());
        let err = validate_database_name(&tenant, &"d".repeat(28)).expect_err("too long");
        assert!(err.contains("at most 27"), "{err}");
    }
}
