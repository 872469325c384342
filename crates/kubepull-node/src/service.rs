//! The node's real image service: the store for presence and pull records, the registry client
//! for pulls ([`kubepull_images::Puller`]).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kubepull_core::keyring::{Credential, CredentialSource};
use kubepull_core::reference::{Digest, Reference};
use kubepull_store::{PullRecord, Store};

use crate::images::{ImageService, PresentImage, PulledBy, PulledImage};
use kubepull_images::puller::now_secs;
use kubepull_images::{error_chain, store_name_of, NoProgress, Puller};

/// [`ImageService`] over the node image store and a registry puller.
pub struct StoreImageService {
    puller: Puller,
}

impl StoreImageService {
    /// A service pulling with `puller` into its store.
    pub fn new(puller: Puller) -> Self {
        StoreImageService { puller }
    }

    fn store(&self) -> &Store {
        self.puller.store()
    }
}

/// Reduces stored pull records to what the ensure-secret-pulled decision needs.
pub fn pulled_by(records: &[PullRecord]) -> Option<PulledBy> {
    if records.is_empty() {
        return None;
    }
    let mut p = PulledBy::default();
    for r in records {
        if r.source == "anonymous" || r.source == "node" {
            p.node_pods_accessible = true;
        }
        if let Some(h) = &r.credential_hash {
            p.credential_hashes.push(h.clone());
        }
        if let Some(coords) = r.source.strip_prefix("secret/") {
            p.secrets.push(coords.to_string());
        }
    }
    Some(p)
}

#[async_trait]
impl ImageService for StoreImageService {
    async fn image_status(&self, image: &Reference) -> Result<Option<PresentImage>, String> {
        let name = store_name_of(image);
        let store = self.store().clone();
        tokio::task::spawn_blocking(move || -> Result<Option<PresentImage>, String> {
            let Some(rec) = store.image(&name).map_err(|e| e.to_string())? else {
                return Ok(None);
            };
            let manifest = Digest::parse(&rec.manifest_digest).map_err(|e| e.to_string())?;
            let pulled_by = match store.pull_records(&manifest) {
                Ok(records) => pulled_by(&records),
                Err(e) => {
                    // KEP-2535: any error reading the records counts as "must pull"; an empty
                    // record matches no credential and is not node-accessible
                    tracing::warn!(image = %name, error = %e, "pull records unreadable: verifying credentials");
                    Some(PulledBy::default())
                }
            };
            Ok(Some(PresentImage {
                image_ref: rec.config_digest.clone(),
                pulled_by,
            }))
        })
        .await
        .map_err(|e| e.to_string())?
    }

    async fn pull_image(
        &self,
        image: &Reference,
        credentials: &[Credential],
    ) -> Result<PulledImage, String> {
        let report = self
            .puller
            .pull(image, credentials, Arc::new(NoProgress))
            .await
            .map_err(|e| error_chain(&e))?;
        Ok(PulledImage {
            image_ref: report.config_digest.to_string(),
            size: report.size,
            pull_duration: report.duration.max(Duration::from_millis(1)),
            credential: report
                .credential_index
                .and_then(|i| credentials.get(i).cloned()),
        })
    }

    async fn record_pulled(
        &self,
        image_ref: &str,
        namespace: &str,
        credential: Option<&Credential>,
    ) -> Result<(), String> {
        // records are keyed by image manifest; find the manifest of this image ID
        let store = self.store().clone();
        let image_ref = image_ref.to_string();
        let rec = match credential {
            None => PullRecord {
                credential_hash: None,
                source: "anonymous".into(),
                pulled_at: now_secs(),
            },
            Some(c) => PullRecord {
                credential_hash: Some(c.credential_hash()),
                source: match &c.source {
                    CredentialSource::Secret { name } => format!("secret/{namespace}/{name}"),
                    CredentialSource::Node => "node".into(),
                    CredentialSource::Dockercfg => "node".into(),
                },
                pulled_at: now_secs(),
            },
        };
        tokio::task::spawn_blocking(move || -> Result<(), String> {
            let mut recorded = 0;
            for img in store.images().map_err(|e| e.to_string())? {
                if img.config_digest == image_ref {
                    let m = Digest::parse(&img.manifest_digest).map_err(|e| e.to_string())?;
                    store.record_pull(&m, &rec).map_err(|e| e.to_string())?;
                    recorded += 1;
                }
            }
            if recorded == 0 {
                return Err(format!("no stored image has the ID {image_ref}"));
            }
            Ok(())
        })
        .await
        .map_err(|e| e.to_string())?
    }
}
