//! Customers as the hub knows them: one hub customer per company, however many systems name
//! it and however they spell it. Each system's record of it is an alias. The same tax id
//! (compared without spaces, dots or dashes) is the same customer; the same normalised legal
//! name with another tax id is a possible duplicate, kept apart and reported. The master
//! record is the customer owner's latest.
//!
//! Hub ids follow the reference order (`CUS-000001`, ...), so every process that applies the
//! same reference events gives the same customer the same id.

use pshub_model::records::Customer;
use std::collections::HashMap;
use unicode_normalization::UnicodeNormalization;

/// Legal forms dropped from the end of names (normalised), longest first when matched.
pub const LEGAL_FORMS: &[&str] = &[
    "gmbh & co kg",
    "gmbh",
    "ag",
    "kg",
    "se",
    "ltd",
    "limited",
    "llc",
    "llp",
    "lp",
    "plc",
    "inc",
    "incorporated",
    "corp",
    "corporation",
    "co",
    "sa",
    "sas",
    "sarl",
    "spa",
    "srl",
    "sl",
    "bv",
    "nv",
    "kk",
    "pty ltd",
    "pty",
    "pte ltd",
    "ab",
    "oy",
    "as",
    "aps",
];

/// A name folded for comparison: Unicode NFKC, case-folded, punctuation removed, spaces
/// collapsed.
fn fold(name: &str) -> String {
    let folded: String = name
        .nfkc()
        .flat_map(char::to_lowercase)
        .collect::<String>()
        .replace('ß', "ss");
    let kept: String = folded
        .chars()
        .filter(|c| c.is_alphanumeric() || c.is_whitespace())
        .collect();
    kept.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A legal name as compared: folded, then trailing legal forms (the built-in ones and
/// `extra`) dropped, as long as something is left.
pub fn normalise_name(name: &str, extra: &[String]) -> String {
    let mut forms: Vec<String> = LEGAL_FORMS
        .iter()
        .map(|f| fold(f))
        .chain(extra.iter().map(|f| fold(f)))
        .filter(|f| !f.is_empty())
        .collect();
    forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
    let mut name = fold(name);
    'strip: loop {
        for form in &forms {
            if let Some(rest) = name.strip_suffix(form.as_str())
                && let Some(rest) = rest.strip_suffix(' ')
                && !rest.is_empty()
            {
                name = rest.to_string();
                continue 'strip;
            }
        }
        return name;
    }
}

/// A tax id as compared: without spaces, dots or dashes, upper-cased.
pub fn normalise_tax_id(tax_id: &str) -> String {
    tax_id
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '.' && *c != '-')
        .flat_map(char::to_uppercase)
        .collect()
}

/// One system's record of a customer.
#[derive(Debug, Clone, PartialEq)]
pub struct Alias {
    pub source: String,
    pub customer_id: String,
    pub legal_name: String,
    pub tax_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HubCustomer {
    pub hub_id: String,
    /// The owner's latest record (until the owner sends one, the first record seen).
    pub master: Customer,
    /// Whether `master` comes from the customer owner.
    pub master_from_owner: bool,
    pub aliases: Vec<Alias>,
}

/// How a customer record was matched.
#[derive(Debug, Clone, PartialEq)]
pub enum Linked {
    /// Already an alias (this source, this id).
    Known,
    /// Another record with the same tax id: the same customer.
    SameTaxId,
    /// No customer matched: a new one.
    New,
    /// A new customer whose normalised name is that of `of`, with another tax id.
    PossibleDuplicate { of: String },
}

/// How to take back one change of the registry.
#[derive(Debug)]
pub struct Undo {
    at: usize,
    before: Option<HubCustomer>,
    keys: Vec<Key>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Alias(String, String),
    Tax(String),
    Name(String),
}

#[derive(Debug, Default)]
pub struct Customers {
    all: Vec<HubCustomer>,
    index: HashMap<Key, usize>,
}

impl Customers {
    /// Links a customer record sent by `source` (the customer owner when `authoritative`):
    /// answers the hub customer's place and how it matched, and how to undo the change.
    pub fn link(
        &mut self,
        source: &str,
        authoritative: bool,
        record: &Customer,
        legal_forms: &[String],
    ) -> (usize, Linked, Undo) {
        let alias_key = Key::Alias(source.to_string(), record.customer_id.to_string());
        let tax = record
            .tax_id
            .as_deref()
            .map(normalise_tax_id)
            .filter(|t| !t.is_empty());
        let name = normalise_name(&record.legal_name, legal_forms);
        let (at, linked) = if let Some(&at) = self.index.get(&alias_key) {
            (at, Linked::Known)
        } else if let Some(&at) = tax
            .as_ref()
            .and_then(|t| self.index.get(&Key::Tax(t.clone())))
        {
            (at, Linked::SameTaxId)
        } else {
            let similar = self.index.get(&Key::Name(name.clone())).copied();
            let at = self.all.len();
            let linked = match similar {
                Some(of) => Linked::PossibleDuplicate {
                    of: self.all[of].hub_id.clone(),
                },
                None => Linked::New,
            };
            (at, linked)
        };
        let before = self.all.get(at).cloned();
        let mut customer = before.clone().unwrap_or_else(|| HubCustomer {
            hub_id: format!("CUS-{:06}", at + 1),
            master: record.clone(),
            master_from_owner: authoritative,
            aliases: Vec::new(),
        });
        if authoritative {
            customer.master = record.clone();
            customer.master_from_owner = true;
        }
        let alias = Alias {
            source: source.to_string(),
            customer_id: record.customer_id.to_string(),
            legal_name: record.legal_name.clone(),
            tax_id: record.tax_id.clone(),
        };
        match customer
            .aliases
            .iter_mut()
            .find(|a| a.source == alias.source && a.customer_id == alias.customer_id)
        {
            Some(known) => *known = alias,
            None => customer.aliases.push(alias),
        }
        let mut keys = Vec::new();
        for key in [Some(alias_key), tax.map(Key::Tax), Some(Key::Name(name))]
            .into_iter()
            .flatten()
        {
            if !self.index.contains_key(&key) {
                self.index.insert(key.clone(), at);
                keys.push(key);
            }
        }
        if at == self.all.len() {
            self.all.push(customer);
        } else {
            self.all[at] = customer;
        }
        (at, linked, Undo { at, before, keys })
    }

    /// Takes back one [`Customers::link`].
    pub fn undo(&mut self, undo: Undo) {
        for key in undo.keys {
            self.index.remove(&key);
        }
        match undo.before {
            Some(before) => self.all[undo.at] = before,
            None => {
                self.all.truncate(undo.at);
            }
        }
    }

    pub fn get(&self, at: usize) -> Option<&HubCustomer> {
        self.all.get(at)
    }

    /// The customer a hub id or any system's customer id names.
    pub fn find(&self, id: &str) -> Option<&HubCustomer> {
        if let Some(n) = id
            .strip_prefix("CUS-")
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| *n >= 1)
            && let Some(found) = self.all.get(n - 1)
            && found.hub_id == id
        {
            return Some(found);
        }
        self.all
            .iter()
            .find(|c| c.aliases.iter().any(|a| a.customer_id == id))
    }

    /// Customers in hub-id order.
    pub fn iter(&self) -> impl Iterator<Item = &HubCustomer> {
        self.all.iter()
    }

    pub fn len(&self) -> usize {
        self.all.len()
    }

    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customer(id: &str, name: &str, tax: Option<&str>) -> Customer {
        let mut value = serde_json::json!({
            "customer_id": id, "legal_name": name, "country": "DE", "currency": "EUR"
        });
        if let Some(tax) = tax {
            value["tax_id"] = serde_json::json!(tax);
        }
        pshub_model::EventData::parse_canonical(
            pshub_model::EventType::CustomerUpserted,
            &value.to_string(),
        )
        .map(|d| match d {
            pshub_model::EventData::Customer(c) => c,
            other => panic!("not a customer: {other:?}"),
        })
        .expect("a customer")
    }

    #[test]
    fn names_are_compared_without_case_punctuation_spaces_or_legal_forms() {
        let table = [
            ("Müller Consulting GmbH", "müller consulting"),
            ("MÜLLER  CONSULTING G.m.b.H.", "müller consulting"),
            ("Acme, Inc.", "acme"),
            ("Acme Pty Ltd", "acme"),
            ("ＡＣＭＥ LLC", "acme"),
            ("Straße AG", "strasse"),
            ("Inc", "inc"),
            ("Nordic Data Oy", "nordic data"),
        ];
        for (name, expected) in table {
            assert_eq!(normalise_name(name, &[]), expected, "{name}");
        }
        assert_eq!(
            normalise_name("Acme Sp. z o.o.", &["sp z oo".to_string()]),
            "acme"
        );
    }

    #[test]
    fn tax_ids_are_compared_without_separators() {
        assert_eq!(normalise_tax_id("de 123.456-789"), "DE123456789");
    }

    #[test]
    fn the_same_tax_id_is_one_customer_and_the_same_name_is_a_possible_duplicate() {
        let mut customers = Customers::default();
        let (first, linked, _) = customers.link(
            "crm",
            true,
            &customer("C-1", "Müller Consulting GmbH", Some("DE123456789")),
            &[],
        );
        assert_eq!(linked, Linked::New);
        let (again, linked, _) = customers.link(
            "crm",
            true,
            &customer("C-9", "Mueller Consulting", Some("DE 123 456 789")),
            &[],
        );
        assert_eq!((again, linked), (first, Linked::SameTaxId));
        assert_eq!(
            customers.get(first).unwrap().master.legal_name,
            "Mueller Consulting"
        );
        let (other, linked, _) = customers.link(
            "crm",
            true,
            &customer("C-2", "MÜLLER CONSULTING G.m.b.H.", Some("DE999")),
            &[],
        );
        assert_ne!(other, first);
        assert_eq!(
            linked,
            Linked::PossibleDuplicate {
                of: "CUS-000001".into()
            }
        );
        assert_eq!(customers.find("C-9").unwrap().hub_id, "CUS-000001");
        assert_eq!(
            customers.find("CUS-000002").unwrap().aliases[0].customer_id,
            "C-2"
        );
    }

    #[test]
    fn a_record_from_another_system_is_an_alias_that_never_overwrites_the_master() {
        let mut customers = Customers::default();
        let (at, ..) = customers.link("crm", true, &customer("C-1", "Acme GmbH", Some("DE1")), &[]);
        let (erp, linked, _) =
            customers.link("erp", false, &customer("E-77", "ACME", Some("DE1")), &[]);
        assert_eq!((erp, linked), (at, Linked::SameTaxId));
        let found = customers.get(at).unwrap();
        assert_eq!(found.master.legal_name, "Acme GmbH");
        assert_eq!(found.aliases.len(), 2);
        assert_eq!(found.aliases[1].source, "erp");
    }

    #[test]
    fn undo_takes_a_link_back() {
        let mut customers = Customers::default();
        customers.link("crm", true, &customer("C-1", "Acme", Some("DE1")), &[]);
        let (_, _, undo) = customers.link(
            "crm",
            true,
            &customer("C-2", "Acme Renamed", Some("DE1")),
            &[],
        );
        let (_, _, undo_new) = customers.link("crm", true, &customer("C-3", "Other", None), &[]);
        customers.undo(undo_new);
        customers.undo(undo);
        assert_eq!(customers.len(), 1);
        assert_eq!(customers.get(0).unwrap().master.legal_name, "Acme");
        assert!(customers.find("C-2").is_none());
        let (_, linked, _) = customers.link("crm", true, &customer("C-3", "Other", None), &[]);
        assert_eq!(linked, Linked::New);
    }
}
