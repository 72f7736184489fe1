//! Salted passwords kept between runs (`--scram-cache FILE`), as clients that remember
//! their SCRAM keys do (RFC 5802 §5.1 allows it): a storm of SCRAM logins then measures
//! the server's work, not the generator's PBKDF2. The file is read when the run starts and
//! written when it ends; a salt or iteration count that changed is derived again.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use switchyard_core::sasl::SaltedPassword;

#[derive(Debug, Default)]
pub struct ScramCache {
    path: Option<PathBuf>,
    /// `mechanism:username` → SaltedPassword.
    entries: Mutex<HashMap<String, SaltedPassword>>,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    key: String,
    salt: String,
    iterations: u32,
    salted: String,
}

impl ScramCache {
    /// The cache in `path` (empty if the file does not exist yet); none without a path.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let mut entries = HashMap::new();
        if path.exists() {
            let text = std::fs::read_to_string(path)?;
            for e in serde_json::from_str::<Vec<Entry>>(&text)? {
                let salted = SaltedPassword {
                    salt: B64.decode(e.salt)?,
                    iterations: e.iterations,
                    salted: B64.decode(e.salted)?,
                };
                entries.insert(e.key, salted);
            }
        }
        Ok(Self {
            path: Some(path.to_owned()),
            entries: Mutex::new(entries),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, SaltedPassword>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn get(&self, key: &str) -> Option<SaltedPassword> {
        self.path.as_ref()?;
        self.lock().get(key).cloned()
    }

    pub fn put(&self, key: String, salted: &SaltedPassword) {
        if self.path.is_some() {
            self.lock().insert(key, salted.clone());
        }
    }

    /// Writes the cache back to its file (nothing without a path).
    pub fn save(&self) -> anyhow::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let entries: Vec<Entry> = self
            .lock()
            .iter()
            .map(|(key, s)| Entry {
                key: key.clone(),
                salt: B64.encode(&s.salt),
                iterations: s.iterations,
                salted: B64.encode(&s.salted),
            })
            .collect();
        std::fs::write(path, serde_json::to_string(&entries)?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_core::sasl::HashAlg;

    #[test]
    fn survives_a_round_trip_through_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.json");
        let salted = SaltedPassword::derive(HashAlg::Sha1, "pw", b"salt", 4096).unwrap();
        let cache = ScramCache::load(Some(&path)).unwrap();
        assert_eq!(cache.get("SCRAM-SHA-1:u0"), None);
        cache.put("SCRAM-SHA-1:u0".into(), &salted);
        cache.save().unwrap();
        let again = ScramCache::load(Some(&path)).unwrap();
        assert_eq!(again.get("SCRAM-SHA-1:u0"), Some(salted));
        let none = ScramCache::load(None).unwrap();
        none.put("k".into(), &again.get("SCRAM-SHA-1:u0").unwrap());
        assert_eq!(none.get("k"), None, "without a file nothing is kept");
    }
}
