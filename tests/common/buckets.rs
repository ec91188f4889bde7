//! Bucket fixtures for sync tests: a place to put and delete objects the way a user's own
//! tools would (files on disk, or the store's own API), and the settings that name it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use stowage::config::BucketSettings;

/// Where test objects live.
pub enum Fixture {
    /// A local directory.
    Local(PathBuf),
    /// S3 (moto), Azure (Azurite) or GCS (fake-gcs-server) through object_store.
    Remote {
        store: Arc<dyn ObjectStore>,
        settings: BucketSettings,
        gcs_upload: Option<(String, String)>,
    },
}

impl Fixture {
    /// A fresh local directory under `root`.
    pub fn local(root: PathBuf) -> Self {
        std::fs::create_dir_all(&root).expect("bucket dir");
        Fixture::Local(root)
    }

    /// A fresh bucket on moto at `STOWAGE_TEST_S3_ENDPOINT`; `None` when it is not set.
    pub async fn s3() -> Option<Self> {
        let endpoint = emulator("STOWAGE_TEST_S3_ENDPOINT")?;
        let bucket = format!("t{}", uuid::Uuid::new_v4().simple());
        let created = reqwest::Client::new()
            .put(format!("{endpoint}/{bucket}"))
            .send()
            .await
            .expect("create bucket");
        assert!(
            created.status().is_success(),
            "moto refused the bucket: {}",
            created.status()
        );
        let mut s = BucketSettings::at(format!("s3://{bucket}/data"));
        s.endpoint = Some(endpoint.clone());
        s.region = Some("us-east-1".into());
        s.allow_http = true;
        s.options.insert("access_key_id".into(), "test".into());
        s.options.insert("secret_access_key".into(), "test".into());
        let store = object_store::aws::AmazonS3Builder::new()
            .with_endpoint(&endpoint)
            .with_bucket_name(&bucket)
            .with_access_key_id("test")
            .with_secret_access_key("test")
            .with_region("us-east-1")
            .with_allow_http(true)
            .with_virtual_hosted_style_request(false)
            .build()
            .expect("s3 client");
        Some(Fixture::Remote {
            store: Arc::new(object_store::prefix::PrefixStore::new(store, "data")),
            settings: s,
            gcs_upload: None,
        })
    }

    /// A container on Azurite (made by tests/run.sh); `None` when `STOWAGE_TEST_AZURITE` is not set.
    pub fn azure(container: &str) -> Option<Self> {
        emulator("STOWAGE_TEST_AZURITE")?;
        let root = format!("t{}", uuid::Uuid::new_v4().simple());
        let mut s = BucketSettings::at(format!("az://{container}/{root}"));
        s.options.insert("use_emulator".into(), "true".into());
        let store = object_store::azure::MicrosoftAzureBuilder::new()
            .with_use_emulator(true)
            .with_container_name(container)
            .build()
            .expect("azure client");
        Some(Fixture::Remote {
            store: Arc::new(object_store::prefix::PrefixStore::new(store, root.as_str())),
            settings: s,
            gcs_upload: None,
        })
    }

    /// A fresh bucket on fake-gcs-server at `STOWAGE_TEST_GCS_ENDPOINT`; `None` when not set.
    pub async fn gcs() -> Option<Self> {
        let endpoint = emulator("STOWAGE_TEST_GCS_ENDPOINT")?;
        let bucket = format!("t{}", uuid::Uuid::new_v4().simple());
        let created = reqwest::Client::new()
            .post(format!("{endpoint}/storage/v1/b"))
            .json(&serde_json::json!({ "name": bucket }))
            .send()
            .await
            .expect("create bucket");
        assert!(
            created.status().is_success(),
            "fake-gcs refused the bucket: {}",
            created.status()
        );
        let key = format!(
            r#"{{"gcs_base_url":"{endpoint}","disable_oauth":true,"client_email":"","private_key":"","private_key_id":""}}"#
        );
        let mut s = BucketSettings::at(format!("gs://{bucket}"));
        s.options.insert("service_account_key".into(), key.clone());
        let store = object_store::gcp::GoogleCloudStorageBuilder::new()
            .with_bucket_name(&bucket)
            .with_service_account_key(&key)
            .build()
            .expect("gcs client");
        Some(Fixture::Remote {
            store: Arc::new(store),
            settings: s,
            gcs_upload: Some((endpoint, bucket)),
        })
    }

    /// Whether it is a local directory.
    pub fn is_local(&self) -> bool {
        matches!(self, Fixture::Local(_))
    }

    /// The bucket's settings.
    pub fn settings(&self) -> BucketSettings {
        match self {
            Fixture::Local(root) => BucketSettings::at(format!("file://{}", root.display())),
            Fixture::Remote { settings, .. } => settings.clone(),
        }
    }

    /// The URL an import spec names object `key` by.
    pub fn object_url(&self, key: &str) -> String {
        match self {
            Fixture::Local(root) => format!("file://{}/{key}", root.display()),
            Fixture::Remote { settings, .. } => format!("{}/{key}", settings.url.trim_end_matches('/')),
        }
    }

    /// Writes an object.
    pub async fn put(&self, key: &str, content: &[u8]) {
        match self {
            Fixture::Local(root) => {
                let path = root.join(key);
                std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
                std::fs::write(path, content).expect("write");
            }
            Fixture::Remote {
                gcs_upload: Some((endpoint, bucket)),
                ..
            } => {
                // fake-gcs-server lacks the XML upload API object_store writes with.
                let url = format!("{endpoint}/upload/storage/v1/b/{bucket}/o?uploadType=media&name={key}");
                let sent = reqwest::Client::new()
                    .post(url)
                    .body(content.to_vec())
                    .send()
                    .await
                    .expect("upload");
                assert!(sent.status().is_success(), "upload: {}", sent.status());
            }
            Fixture::Remote { store, .. } => {
                store
                    .put(&Path::from(key), PutPayload::from(content.to_vec()))
                    .await
                    .expect("put");
            }
        }
    }

    /// Every object's key, sorted.
    pub async fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = match self {
            Fixture::Local(root) => super::files_under(root)
                .into_iter()
                .filter_map(|path| Some(path.strip_prefix(root).ok()?.to_string_lossy().into_owned()))
                .collect(),
            Fixture::Remote { store, .. } => {
                use futures::TryStreamExt;
                let listed: Vec<object_store::ObjectMeta> = store.list(None).try_collect().await.expect("list");
                listed.into_iter().map(|meta| meta.location.to_string()).collect()
            }
        };
        keys.sort();
        keys
    }

    /// The content of object `key`, or `None` when there is none.
    pub async fn get(&self, key: &str) -> Option<Vec<u8>> {
        match self {
            Fixture::Local(root) => std::fs::read(root.join(key)).ok(),
            Fixture::Remote { store, .. } => match store.get(&Path::from(key)).await {
                Ok(got) => Some(got.bytes().await.expect("read").to_vec()),
                Err(object_store::Error::NotFound { .. }) => None,
                Err(e) => panic!("get {key}: {e}"),
            },
        }
    }

    /// How many multipart uploads the S3 bucket holds unfinished (moto lists them all).
    pub async fn unfinished_uploads(&self) -> usize {
        let settings = self.settings();
        let endpoint = settings.endpoint.clone().expect("an S3 fixture's endpoint");
        let bucket = settings
            .url
            .trim_start_matches("s3://")
            .split('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        let listing = reqwest::get(format!("{endpoint}/{bucket}?uploads"))
            .await
            .expect("list uploads")
            .text()
            .await
            .expect("body");
        listing.matches("<UploadId>").count()
    }

    /// Deletes an object.
    pub async fn delete(&self, key: &str) {
        match self {
            Fixture::Local(root) => std::fs::remove_file(root.join(key)).expect("remove"),
            Fixture::Remote { store, .. } => store.delete(&Path::from(key)).await.expect("delete"),
        }
    }
}

/// The value of an emulator variable; under CI a missing one is an error.
fn emulator(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but {var} is not set; run the suite with bash tests/run.sh")
        }
        _ => {
            eprintln!("skipping: {var} is not set");
            None
        }
    }
}
