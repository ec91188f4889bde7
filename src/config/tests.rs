//! Loading and checking settings.
use super::*;

#[test]
fn default_toml_documents_the_defaults() {
    let documented: Settings = Figment::from(Toml::file(concat!(env!("CARGO_MANIFEST_DIR"), "/config/default.toml")))
        .extract()
        .expect("config/default.toml parses");
    assert_eq!(documented, Settings::default());
}

#[test]
fn rejects_a_bad_expiry_schedule() {
    let mut settings = Settings::default();
    settings.expiry.schedule = "every five minutes".into();
    let err = settings.clone().completed().expect_err("not cron").to_string();
    assert!(err.contains("expiry.schedule"), "{err}");
    settings.expiry.schedule = String::new();
    assert!(
        settings
            .completed()
            .expect("valid")
            .expiry_schedule()
            .expect("valid")
            .is_none()
    );
}

#[test]
fn masks_passwords() {
    assert_eq!(mask_password("postgres://u:secret@h/db"), "postgres://u:****@h/db");
    assert_eq!(mask_password("sqlite://x.db"), "sqlite://x.db");
}

#[test]
fn rejects_unsupported_bucket_urls() {
    let mut settings = Settings::default();
    settings
        .buckets
        .insert("raw".into(), BucketSettings::at("ftp://host/x"));
    let err = settings.completed().expect_err("ftp is unsupported").to_string();
    assert!(err.contains("buckets.raw.url"), "{err}");
}

#[test]
fn a_plain_http_endpoint_needs_allow_http() {
    let mut bucket = BucketSettings::at("s3://raw");
    bucket.endpoint = Some("http://127.0.0.1:9000".into());
    let mut settings = Settings::default();
    settings.buckets.insert("raw".into(), bucket.clone());
    let err = settings.clone().completed().expect_err("http").to_string();
    assert!(
        err.contains("buckets.raw.endpoint") && err.contains("allow_http"),
        "{err}"
    );
    bucket.allow_http = true;
    settings.buckets.insert("raw".into(), bucket);
    assert!(settings.completed().is_ok());
}
