use super::*;
use serde_json::json;

/// A PSA's time entry, as a test source sends it: hours as text or as a number, a rate in
/// cents.
const TIME_ENTRY: &str = r#"
source = "acme-psa"
record = "time_entry"
version = 1
target = "time_entry.approved"
when = '.state == "approved"'

[envelope]
id = '"acme-" + .uuid'
occurred_at = { timestamp = ".approved_at" }

[data]
entry_id = ".uuid"
worker_id = ".person.code"
project_code = ".job"
work_date = ".day"
hours = { decimal = ".duration_hours" }
billable = ".billable // true"
"rate.amount" = { decimal = ".rate_cents", minor_units_of = ".currency" }
"#;

fn time_entry() -> Mapping {
    Mapping::parse("acme-psa/time_entry.v1.toml", TIME_ENTRY).unwrap()
}

fn entry(hours: Value) -> Value {
    json!({
        "uuid": "T-9", "state": "approved", "approved_at": 1764590400,
        "person": { "code": "W-1" }, "job": "P-1", "day": "2026-12-01",
        "duration_hours": hours, "rate_cents": 15050, "currency": "eur"
    })
}

/// Maps `record` and compares with `expected`: the mapped `data`, or the error's text.
fn check(mapping: &Mapping, record: Value, expected: Result<Value, &str>) {
    let got = mapping.apply(&record);
    match (got, expected) {
        (Ok(Some(envelope)), Ok(data)) => assert_eq!(envelope["data"], data, "{envelope}"),
        (Err(error), Err(text)) => assert_eq!(error.to_string(), text),
        (got, expected) => panic!("got {got:?}, expected {expected:?}"),
    }
}

#[test]
fn decimals_are_read_exactly_and_scaled_from_minor_units_in_rust() {
    let m = time_entry();
    let data = |hours: &str| {
        json!({ "entry_id": "T-9", "worker_id": "W-1", "project_code": "P-1",
                "work_date": "2026-12-01", "hours": hours, "billable": true,
                "rate": { "amount": "150.50" } })
    };
    check(&m, entry(json!("7.5")), Ok(data("7.5")));
    // A number keeps its digits: no float on the way through jq.
    let exact: Value = serde_json::from_str("1.0000000000000000000000000001").unwrap();
    check(&m, entry(exact), Ok(data("1.0000000000000000000000000001")));
    check(&m, entry(json!(8)), Ok(data("8")));
}

#[test]
fn a_failing_field_names_mapping_version_field_path_and_value() {
    let m = time_entry();
    check(
        &m,
        entry(json!("seven")),
        Err(
            "mapping acme-psa/time_entry v1, data.hours (`.duration_hours`): 'seven' is not a decimal number; found \"seven\"",
        ),
    );
    check(
        &m,
        entry(json!(true)),
        Err(
            "mapping acme-psa/time_entry v1, data.hours (`.duration_hours`): is not a number; found true",
        ),
    );
    let mut record = entry(json!("1"));
    record["currency"] = json!("XXQ");
    let error = m.apply(&record).unwrap_err();
    assert_eq!(error.field, "data.rate.amount");
    assert_eq!(error.path, ".currency");
    assert_eq!(error.found.as_deref(), Some("\"XXQ\""));
    // The envelope is read before the data: its error is the one named.
    record["approved_at"] = json!("yesterday");
    let error = m.apply(&record).unwrap_err();
    assert_eq!(
        (error.field.as_str(), error.path.as_str()),
        ("occurred_at", ".approved_at")
    );
}

/// A mapping `t/<record>.v1` of time entries whose `[data]` is `data`.
fn small(record: &str, data: &str) -> Mapping {
    let text = format!(
        "source = \"t\"\nrecord = \"{record}\"\nversion = 1\ntarget = \"time_entry.approved\"\n[envelope]\nid = \".id\"\noccurred_at = \".at\"\n[data]\n{data}\n"
    );
    Mapping::parse(&format!("t/{record}.v1.toml"), &text).unwrap()
}

#[test]
fn a_fraction_outside_a_decimal_field_is_refused_not_rounded() {
    let m = small("x", "hours = \".h * 2\"");
    let error = m
        .apply(&json!({ "id": "1", "at": "2026-12-01T00:00:00Z", "h": 1.25 }))
        .unwrap_err();
    assert_eq!(error.field, "data.hours");
    assert!(
        error.problem.contains("declare the field { decimal"),
        "{error}"
    );
}

#[test]
fn records_the_mapping_does_not_take_are_not_mapped() {
    let mut record = entry(json!("1"));
    record["state"] = json!("submitted");
    assert_eq!(time_entry().apply(&record), Ok(None));
}

#[test]
fn a_mapping_file_is_checked_when_read() {
    let bad = |file: &str, text: &str| Mapping::parse(file, text).unwrap_err().to_string();
    assert!(
        bad("acme-psa/time_entry.v2.toml", TIME_ENTRY)
            .contains("name it acme-psa/time_entry.v1.toml")
    );
    let no_id = TIME_ENTRY.replace("id = '\"acme-\" + .uuid'\n", "");
    assert!(bad("acme-psa/time_entry.v1.toml", &no_id).contains("[envelope] gives no id"));
    let bad_jq = TIME_ENTRY.replace(".person.code", ".person.code |||");
    assert!(bad("acme-psa/time_entry.v1.toml", &bad_jq).contains("does not parse"));
    let undefined = TIME_ENTRY.replace(".person.code", "nosuchfilter(.person)");
    assert!(bad("acme-psa/time_entry.v1.toml", &undefined).contains("nosuchfilter"));
    let target = TIME_ENTRY.replace("time_entry.approved", "time_entry.done");
    assert!(bad("acme-psa/time_entry.v1.toml", &target).contains("not a canonical event type"));
}

#[test]
fn a_folder_adds_mappings_and_replaces_shipped_ones_by_name() {
    let dir = std::env::temp_dir().join(format!("pshub-mappings-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("acme-psa")).unwrap();
    std::fs::create_dir_all(dir.join("stripe")).unwrap();
    std::fs::write(dir.join("acme-psa/time_entry.v1.toml"), TIME_ENTRY).unwrap();
    let replaced = SHIPPED[0]
        .1
        .replace("description = \"", "description = \"Replaced: ");
    std::fs::write(dir.join("stripe/invoice.v1.toml"), replaced).unwrap();
    let mappings = Mappings::with_dir(&dir).unwrap();
    assert!(mappings.get("acme-psa/time_entry.v1").is_some());
    assert!(
        mappings
            .get("stripe/invoice.v1")
            .unwrap()
            .description
            .starts_with("Replaced: ")
    );
    std::fs::write(dir.join("stripe/invoice.v1.toml"), "source = 1").unwrap();
    let error = Mappings::with_dir(&dir).unwrap_err();
    assert!(error.file.ends_with("stripe/invoice.v1.toml"), "{error}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Every shipped mapping, on every fixture of its source (`mappings/<source>/fixtures/`):
/// the canonical envelope, or that the mapping does not take the record.
#[test]
fn shipped_mappings_on_their_fixtures() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../mappings");
    let shipped = Mappings::shipped();
    for (file, text) in SHIPPED {
        if let Err(error) = Mapping::parse(file, text) {
            panic!("a shipped mapping does not compile: {error}");
        }
    }
    assert_eq!(shipped.iter().count(), SHIPPED.len());
    for mapping in shipped.iter() {
        let fixtures = root.join(&mapping.source).join("fixtures");
        let mut files: Vec<_> = std::fs::read_dir(&fixtures)
            .unwrap()
            .map(|f| f.unwrap().path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{} has no fixtures", mapping.name);
        for file in files {
            let record: Value =
                serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
            let output = match mapping.apply(&record) {
                Ok(Some(envelope)) => serde_json::to_string_pretty(&envelope).unwrap(),
                Ok(None) => "not taken by this mapping".to_string(),
                Err(error) => format!("error: {error}"),
            };
            let fixture = file.file_stem().unwrap().to_string_lossy().to_string();
            insta::assert_snapshot!(
                format!("{}__{fixture}", mapping.name.replace('/', "_")),
                output
            );
        }
    }
}

#[test]
fn a_unit_divides_exactly_or_the_field_is_refused() {
    let m = small(
        "minutes",
        "hours = { decimal = \".minutes\", divide_by = 60 }",
    );
    let hours = |minutes: Value| {
        m.apply(&json!({ "id": "1", "at": "2026-12-01T00:00:00Z", "minutes": minutes }))
            .map(|e| e.unwrap()["data"]["hours"].clone())
            .map_err(|e| e.problem)
    };
    assert_eq!(hours(json!(225)), Ok(json!("3.75")));
    assert_eq!(hours(json!(90)), Ok(json!("1.5")));
    assert_eq!(hours(json!("0.6")), Ok(json!("0.01")));
    assert_eq!(
        hours(json!(100)),
        Err("does not divide exactly by 60".to_string())
    );
}

#[test]
fn timestamps_are_read_as_rfc_3339_or_with_salesforces_offset() {
    let utc = |text: &str| crate::parse_timestamp(text).map(|at| at.to_rfc3339());
    let ten = Some("2026-03-01T10:00:00+00:00".to_string());
    assert_eq!(utc("2026-03-01T10:00:00Z"), ten);
    assert_eq!(utc("2026-03-01T10:00:00.000+0000"), ten);
    assert_eq!(utc("2026-03-01T02:00:00.000-0800"), ten);
    assert_eq!(utc("2026-03-01T02:00:00-08:00"), ten);
    assert_eq!(utc("2026-03-01 10:00"), None);
    assert_eq!(utc("2026-03-01"), None);
}

#[test]
fn a_list_field_maps_each_value_with_its_own_fields_and_names_the_element_that_fails() {
    let m = small(
        "card",
        r#"rates = { each = '.card as $c | $c.lines[] | . + {currency: $c.currency}', fields = { role = ".role", rate = { decimal = ".cents", minor_units_of = ".currency" } } }"#,
    );
    let card = |second: Value| {
        json!({ "id": "1", "at": "2026-12-01T00:00:00Z", "card": { "currency": "usd",
            "lines": [{ "role": "lead", "cents": 20050 }, { "role": "analyst", "cents": second }] } })
    };
    let mapped = m.apply(&card(json!(9000))).unwrap().unwrap();
    assert_eq!(
        mapped["data"]["rates"],
        json!([{ "role": "lead", "rate": "200.50" }, { "role": "analyst", "rate": "90.00" }])
    );
    let error = m.apply(&card(json!("ninety"))).unwrap_err();
    assert_eq!(error.field, "data.rates[1].rate");
    assert_eq!(error.path, ".cents");
    assert_eq!(error.found.as_deref(), Some("\"ninety\""));
    assert_eq!(m.path_of("data.rates[1].rate"), Some(".cents"));
    assert_eq!(
        m.path_of("data.rates[1].region"),
        Some(m.path_of("data.rates").unwrap())
    );
    // No value, no element: an empty list, which the canonical record may then refuse.
    let empty = json!({ "id": "1", "at": "2026-12-01T00:00:00Z", "card": { "currency": "usd", "lines": [] } });
    assert_eq!(
        m.apply(&empty).unwrap().unwrap()["data"]["rates"],
        json!([])
    );
}

#[test]
fn a_list_field_is_refused_in_the_envelope_and_without_fields() {
    let text = |envelope_id: &str, data: &str| {
        format!(
            "source = \"t\"\nrecord = \"x\"\nversion = 1\ntarget = \"time_entry.approved\"\n[envelope]\nid = {envelope_id}\noccurred_at = \".at\"\n[data]\n{data}\n"
        )
    };
    let listed_id = text(
        r#"{ each = ".ids[]", fields = { a = ".a" } }"#,
        "x = \".x\"",
    );
    let error = Mapping::parse("t/x.v1.toml", &listed_id).unwrap_err();
    assert!(
        error
            .problem
            .contains("id: an envelope field is text (occurred_at may be a timestamp), not a list"),
        "{error}"
    );
    let no_fields = text("\".id\"", r#"rates = { each = ".r[]", fields = {} }"#);
    let error = Mapping::parse("t/x.v1.toml", &no_fields).unwrap_err();
    assert!(error.problem.contains("a list names no fields"), "{error}");
}

#[test]
fn unix_seconds_are_read_from_a_timestamp_or_kept_when_whole() {
    let m = small("versioned", "version = { unix_seconds = \".updated\" }");
    let version = |updated: Value| {
        m.apply(&json!({ "id": "1", "at": "2026-12-01T00:00:00Z", "updated": updated }))
            .map(|e| e.unwrap()["data"]["version"].clone())
            .map_err(|e| e.problem)
    };
    assert_eq!(
        version(json!("2026-03-01T10:00:00Z")),
        Ok(json!(1_772_359_200))
    );
    assert_eq!(
        version(json!("2026-03-01T02:00:00.000-0800")),
        Ok(json!(1_772_359_200))
    );
    assert_eq!(version(json!(17)), Ok(json!(17)));
    assert_eq!(
        version(json!("yesterday")),
        Err("is not an RFC 3339 timestamp".to_string())
    );
    assert!(version(json!(1.5)).is_err());
}

#[test]
fn a_field_table_is_one_kind_with_its_own_settings_and_nothing_else() {
    let problem = |data: &str| {
        let text = format!(
            "source = \"t\"\nrecord = \"x\"\nversion = 1\ntarget = \"time_entry.approved\"\n[envelope]\nid = \".id\"\noccurred_at = \".at\"\n[data]\n{data}\n"
        );
        Mapping::parse("t/x.v1.toml", &text).unwrap_err().problem
    };
    // A mistyped setting would read cents as units: it is refused.
    assert_eq!(
        problem(r#"rate = { decimal = ".cents", minor_unit_of = ".currency" }"#),
        "data.rate: 'minor_unit_of' is not a setting of a decimal field (decimal, minor_units_of, divide_by)"
    );
    assert_eq!(
        problem(
            r#"rates = { each = ".r[]", fields = { rate = { decimal = ".c", divide_by = 0 } } }"#
        ),
        "data.rates[].rate: divide_by is Integer(0); give a whole number from 1 to 4294967295"
    );
    assert_eq!(
        problem(r#"at = { decimal = ".a", timestamp = ".a" }"#),
        "data.at: names decimal and timestamp; give one"
    );
    assert_eq!(
        problem(r#"at = { stamp = ".a" }"#),
        "data.at: a table names its kind: decimal, timestamp, unix_seconds or each"
    );
    assert_eq!(
        problem(r#"rates = { each = ".r[]" }"#),
        "data.rates: a list names the fields of each element in a table `fields`"
    );
    assert_eq!(
        problem("hours = 3"),
        "data.hours: give a jq expression or a table, not a integer"
    );
    let seconds_id = "source = \"t\"\nrecord = \"x\"\nversion = 1\ntarget = \"time_entry.approved\"\n[envelope]\nid = { unix_seconds = \".at\" }\noccurred_at = \".at\"\n[data]\nx = \".x\"\n";
    let error = Mapping::parse("t/x.v1.toml", seconds_id).unwrap_err();
    assert!(error.problem.contains("not Unix seconds"), "{error}");
}
