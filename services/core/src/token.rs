//! Random identifiers (stream ids, SCRAM nonces, generated resources): alphanumeric, so
//! they are safe in XML attributes and SCRAM attribute values alike.

use rand::distributions::Alphanumeric;
use rand::Rng;

pub fn token(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}
