//! Approval links: `GET {public}/v1/workflows/{id}/decision?approve=true&token=…`
//! (the gateway shows a page whose button POSTs the same URL, so a mail
//! scanner that opens links decides nothing). The token is an HMAC of the
//! workflow id and the decision under `SLUICE_LINK_SECRET`: it proves that
//! decision for that workflow only, and needs no stored state.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// What a path segment must escape: workflow ids (letters, digits, `-`,
/// `_`, `.`, `:`) stay as they are.
const PATH_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b':');

/// Signs and checks link tokens.
#[derive(Clone)]
pub struct Links {
    key: Vec<u8>,
    public_url: String,
}

impl std::fmt::Debug for Links {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Links")
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

impl Links {
    /// With `secret` (or a random key when there is none).
    pub fn new(secret: Option<&str>, public_url: &str) -> Self {
        let key = match secret {
            Some(s) => s.as_bytes().to_vec(),
            None => {
                let k: [u8; 32] = rand::random();
                k.to_vec()
            }
        };
        Self {
            key,
            public_url: public_url.trim_end_matches('/').to_string(),
        }
    }

    fn mac(&self, workflow_id: &str, approve: bool) -> Hmac<Sha256> {
        #[allow(clippy::expect_used)]
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(workflow_id.as_bytes());
        mac.update(&[0]);
        mac.update(if approve { b"approve" } else { b"reject" });
        mac
    }

    /// The token proving `approve` for `workflow_id`.
    pub fn token(&self, workflow_id: &str, approve: bool) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(workflow_id, approve).finalize().into_bytes())
    }

    /// Whether `token` proves `approve` for `workflow_id` (compared in
    /// constant time).
    pub fn verify(&self, workflow_id: &str, approve: bool, token: &str) -> bool {
        let Ok(bytes) = URL_SAFE_NO_PAD.decode(token) else {
            return false;
        };
        self.mac(workflow_id, approve).verify_slice(&bytes).is_ok()
    }

    /// The link that decides `approve` for `workflow_id`.
    pub fn decision_url(&self, workflow_id: &str, approve: bool) -> String {
        let id = percent_encoding::utf8_percent_encode(workflow_id, PATH_SEGMENT);
        format!(
            "{}/v1/workflows/{id}/decision?approve={approve}&token={}",
            self.public_url,
            self.token(workflow_id, approve)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_proves_one_decision_for_one_workflow() {
        let links = Links::new(Some(&"k".repeat(32)), "http://gw/");
        let t = links.token("wf-1", true);
        assert!(links.verify("wf-1", true, &t));
        assert!(!links.verify("wf-1", false, &t), "not the other decision");
        assert!(!links.verify("wf-2", true, &t), "not another workflow");
        assert!(!links.verify("wf-1", true, "not base64!"));
        let other = Links::new(Some(&"j".repeat(32)), "http://gw");
        assert!(!other.verify("wf-1", true, &t), "not under another key");
        let url = links.decision_url("wf/1", false);
        assert!(
            url.starts_with("http://gw/v1/workflows/wf%2F1/decision?approve=false&token="),
            "{url}"
        );
        let plain = links.decision_url("a-b_c.d:e", true);
        assert!(
            plain.starts_with("http://gw/v1/workflows/a-b_c.d:e/decision?"),
            "{plain}"
        );
    }
}
