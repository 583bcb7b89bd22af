//! Email (`email` and `email-json` subscriptions), sent with lettre over
//! SMTP: implicit TLS (`smtps://`), STARTTLS required (`smtp://`, the
//! default) or, for a relay on the same machine only, `?tls=none`; with
//! the URL's user and password when it has them. Connections are pooled.
//!
//! Every email carries its unsubscribe link, in the text and in the
//! `List-Unsubscribe` headers (with one-click unsubscribe, RFC 8058).
//!
//! A permanent SMTP refusal (5xx) is terminal; a transient one (4xx), a
//! timeout or a connection failure is retried.

use std::time::Duration;

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use sluice_outbound::retry::Outcome;
use tracing::Instrument as _;

use crate::config::Smtp;

/// An SMTP client.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer").field("from", &self.from).finish()
    }
}

/// One email.
#[derive(Debug)]
pub struct Mail<'a> {
    /// The recipient.
    pub to: &'a str,
    /// Shown as the sender's name (the topic's display name).
    pub from_name: Option<&'a str>,
    /// The subject line.
    pub subject: &'a str,
    /// The text.
    pub text: String,
    /// The unsubscribe link, if the email has one.
    pub unsubscribe: Option<&'a str>,
    /// The delivery's id, the same on every retry: the email's
    /// `Message-ID` is made from it, so a copy sent again (the notifier
    /// stopped after the SMTP server took it, before it could record so)
    /// is the same message to the mail system.
    pub delivery_id: &'a str,
}

impl Mailer {
    /// A client for `smtp`, timing out each send after `timeout`.
    pub fn new(smtp: &Smtp, timeout: Duration) -> Result<Self, String> {
        let url = &smtp.url;
        let host = url.host_str().ok_or("SLUICE_SMTP_URL has no host")?;
        let mut params = TlsParameters::builder(host.to_string());
        if let Some(path) = &smtp.ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| format!("cannot read SLUICE_SMTP_CA_FILE {path}: {e}"))?;
            let cert = Certificate::from_pem(&pem)
                .map_err(|e| format!("SLUICE_SMTP_CA_FILE {path} is not a PEM certificate: {e}"))?;
            params = params.add_root_certificate(cert);
        }
        let params = params
            .build()
            .map_err(|e| format!("cannot set up TLS for {host}: {e}"))?;
        let mode = url
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.into_owned());
        let (tls, default_port) = match (url.scheme(), mode.as_deref()) {
            ("smtps", None) => (Tls::Wrapper(params), 465),
            ("smtp", None | Some("required")) => (Tls::Required(params), 587),
            ("smtp", Some("opportunistic")) => (Tls::Opportunistic(params), 587),
            ("smtp", Some("none")) => (Tls::None, 25),
            (scheme, mode) => {
                return Err(format!(
                    "SLUICE_SMTP_URL: {scheme}:// with tls={} is not a known mode (smtps://, or smtp:// with tls=required, opportunistic or none)",
                    mode.unwrap_or("")
                ))
            }
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(url.port().unwrap_or(default_port))
            .tls(tls)
            .timeout(Some(timeout));
        if !url.username().is_empty() {
            let decode = |s: &str| {
                percent_decode(s).ok_or("SLUICE_SMTP_URL: the user or password is not UTF-8")
            };
            builder = builder.credentials(Credentials::new(
                decode(url.username())?,
                decode(url.password().unwrap_or(""))?,
            ));
        }
        let from: Mailbox = smtp
            .from
            .parse()
            .map_err(|e| format!("SLUICE_SMTP_FROM {:?} is not an address: {e}", smtp.from))?;
        Ok(Self {
            transport: builder.build(),
            from,
        })
    }

    /// Sends one email.
    pub async fn send(&self, mail: &Mail<'_>) -> Outcome {
        let to: Mailbox = match mail.to.parse() {
            Ok(a) => a,
            Err(e) => {
                return Outcome::Terminal {
                    reason: format!("{:?} is not an email address: {e}", mail.to),
                    response: None,
                }
            }
        };
        let from = match mail.from_name {
            Some(name) if !name.is_empty() => {
                Mailbox::new(Some(name.to_string()), self.from.email.clone())
            }
            _ => self.from.clone(),
        };
        let mut builder = Message::builder()
            .message_id(Some(message_id(mail.delivery_id, &self.from)))
            .from(from)
            .to(to)
            .subject(mail.subject)
            .header(ContentType::TEXT_PLAIN);
        let message = match mail.unsubscribe {
            Some(link) => {
                builder = builder.header(ListUnsubscribe(format!("<{link}>")));
                builder = builder.header(ListUnsubscribePost);
                builder.body(mail.text.clone())
            }
            None => builder.body(mail.text.clone()),
        };
        let message = match message {
            Ok(m) => m,
            Err(e) => {
                return Outcome::Terminal {
                    reason: format!("the email cannot be built: {e}"),
                    response: None,
                }
            }
        };
        let span = tracing::info_span!(
            "sluice.smtp.send",
            otel.name = "smtp send",
            otel.kind = "client",
        );
        match self.transport.send(message).instrument(span).await {
            Ok(_) => Outcome::Delivered,
            Err(e) => {
                let response = e.status().map(|c| c.to_string());
                let reason = format!("the SMTP server did not take the email: {e}");
                if e.is_permanent() {
                    Outcome::Terminal { reason, response }
                } else {
                    Outcome::Retry { reason, response }
                }
            }
        }
    }
}

/// `<delivery id@sender's domain>`, the delivery id kept to the
/// characters a Message-ID's left part may hold.
fn message_id(delivery_id: &str, from: &Mailbox) -> String {
    let left: String = delivery_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '.'
            }
        })
        .collect();
    format!("<{left}@{}>", from.email.domain())
}

fn percent_decode(s: &str) -> Option<String> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

/// `List-Unsubscribe: <link>`.
#[derive(Debug, Clone)]
struct ListUnsubscribe(String);

impl lettre::message::header::Header for ListUnsubscribe {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe")
    }
    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self(s.to_string()))
    }
    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

/// `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058).
#[derive(Debug, Clone)]
struct ListUnsubscribePost;

impl lettre::message::header::Header for ListUnsubscribePost {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe-Post")
    }
    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self)
    }
    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "List-Unsubscribe=One-Click".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_id_is_made_from_the_delivery_id_alone() {
        let from: Mailbox = "sluice <no-reply@example.org>".parse().unwrap();
        assert_eq!(message_id("6c1d:sub/9", &from), "<6c1d.sub.9@example.org>");
        assert_eq!(
            message_id("6c1d:sub/9", &from),
            message_id("6c1d:sub/9", &from)
        );
    }

    fn smtp(url: &str) -> Smtp {
        Smtp {
            url: url::Url::parse(url).unwrap(),
            ca_file: None,
            from: "sluice@localhost".into(),
        }
    }

    #[tokio::test]
    async fn urls_choose_the_tls_mode() {
        let t = Duration::from_secs(5);
        assert!(Mailer::new(&smtp("smtps://u:p@mail.example"), t).is_ok());
        assert!(Mailer::new(&smtp("smtp://mail.example:2525"), t).is_ok());
        assert!(Mailer::new(&smtp("smtp://mail.example?tls=none"), t).is_ok());
        assert!(Mailer::new(&smtp("smtp://mail.example?tls=sometimes"), t)
            .unwrap_err()
            .contains("not a known mode"));
        let mut bad_from = smtp("smtps://mail.example");
        bad_from.from = "nobody".into();
        assert!(Mailer::new(&bad_from, t)
            .unwrap_err()
            .contains("SLUICE_SMTP_FROM"));
    }

    #[test]
    fn credentials_in_the_url_are_percent_decoded() {
        assert_eq!(
            percent_decode("p%40ss%2Fword").as_deref(),
            Some("p@ss/word")
        );
        assert_eq!(percent_decode("plain").as_deref(), Some("plain"));
        assert_eq!(percent_decode("%ff"), None);
    }
}
