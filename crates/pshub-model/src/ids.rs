//! Typed business keys. Every id is the owning system's key: non-empty, at most 200
//! characters, no control characters, no surrounding white space.

use std::fmt;

/// Checks the shape shared by every business key.
pub fn check_key(raw: &str) -> Result<(), String> {
    if raw.is_empty() {
        return Err("must not be empty".into());
    }
    if raw.len() > 200 {
        return Err(format!(
            "is {} characters long; at most 200 are allowed",
            raw.len()
        ));
    }
    if raw.trim() != raw {
        return Err(format!("'{raw}' has leading or trailing white space"));
    }
    if raw.chars().any(char::is_control) {
        return Err("contains a control character".into());
    }
    Ok(())
}

macro_rules! business_key {
    ($($(#[$doc:meta])* $name:ident;)*) => {$(
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Box<str>);

        impl $name {
            pub fn parse(raw: &str) -> Result<Self, String> {
                check_key(raw)?;
                Ok($name(raw.into()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), &*self.0)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
    )*};
}

business_key! {
    /// A worker's id in the HRIS.
    WorkerId;
    /// A project's code, shared by the PSA and the ERP.
    ProjectCode;
    /// A customer's id in the CRM.
    CustomerId;
    /// A contract's id in the CRM or CPQ.
    ContractId;
    /// An opportunity's id in the CRM.
    OpportunityId;
    /// A rate card's id.
    RateCardId;
    /// A time entry's id in the PSA.
    EntryId;
    /// An expense's id in the expense platform.
    ExpenseId;
    /// An assignment's id in the PSA.
    AssignmentId;
    /// A milestone's id.
    MilestoneId;
    /// An invoice's id in the ERP.
    InvoiceId;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_checked() {
        assert!(WorkerId::parse("W-001").is_ok());
        assert!(WorkerId::parse("").is_err());
        assert!(WorkerId::parse(" W-1").is_err());
        assert!(WorkerId::parse("W\n1").is_err());
        assert!(WorkerId::parse(&"x".repeat(201)).is_err());
        assert_eq!(ProjectCode::parse("P-1").unwrap().as_str(), "P-1");
    }
}
