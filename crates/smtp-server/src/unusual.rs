//! What the session does when `accounts::Activity` reports unusual activity of a credential:
//! log the event, send the postmaster of the account's domain an alert, and with the action
//! "hold" suspend the credential and put its queued mail on hold until an admin decides
//! (`postrider queue release|delete`, `postrider credential resume`).

use crate::session::Session;
use queue::{AcceptedRecipient, Origin, Submission};
use store::{Destination, NewBody, RecipientDsn};

impl Session {
    pub(crate) async fn unusual(&mut self, login: &accounts::Login, event: accounts::Event) {
        let action = self.svc.activity.action();
        tracing::warn!(user = %login.account, credential = %login.credential, event = %event, ?action, "unusual activity");
        let store = self.svc.directory.store().clone();
        let mut held = 0;
        if action == accounts::Action::Hold {
            let reason = format!("unusual activity: {event}");
            if let Err(e) = store
                .suspend_credential(&login.account, &login.credential, Some(&reason))
                .await
            {
                tracing::error!(error = %e, "suspending the credential failed");
            }
            // Its mail still in the queue waits for an admin.
            match store.queue_list().await {
                Ok(list) => {
                    for m in list {
                        if m.envelope.auth.as_deref() == Some(login.account.as_str())
                            && m.envelope.credential.as_deref() == Some(login.credential.as_str())
                            && !m.held()
                            && m.recipients.iter().any(|r| !r.state.is_final())
                            && store.queue_hold(&m.id).await.unwrap_or(false)
                        {
                            held += 1;
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "listing the queue to hold the credential's mail failed")
                }
            }
        }
        if let Err(e) = self.alert(login, &event, action, held).await {
            tracing::error!(error = %e, "the unusual-activity alert could not be queued");
        }
    }

    /// A plain-text alert to postmaster@ of the account's domain, with a null sender.
    async fn alert(
        &self,
        login: &accounts::Login,
        event: &accounts::Event,
        action: accounts::Action,
        held: usize,
    ) -> Result<(), String> {
        let domain = login
            .account
            .rsplit_once('@')
            .map(|(_, d)| d.to_string())
            .unwrap_or_default();
        let to = format!("postmaster@{domain}");
        let owners = match self
            .svc
            .directory
            .resolve(&to)
            .await
            .map_err(|e| e.to_string())?
        {
            accounts::Resolution::Local(owners) => owners,
            _ => return Err(format!("{to} is not a local mailbox")),
        };
        let what = match action {
            accounts::Action::Alert => "Nothing was stopped (action \"alert\").".to_string(),
            accounts::Action::Throttle => {
                "Its mail is refused with a temporary error for the rest of the hour (action \"throttle\").".to_string()
            }
            accounts::Action::Hold => format!(
                "The credential is suspended: logins with it fail until you run\r\n  postrider credential resume {} {}\r\nIts mail in the queue ({held} message(s) so far, and what it sends now) is held:\r\n  postrider queue list --state held\r\n  postrider queue release ID   or   postrider queue delete ID",
                login.account, login.credential
            ),
        };
        let date = queue::rfc5322_date(std::time::SystemTime::now());
        let text = format!(
            "From: Postrider <postmaster@{host}>\r\nTo: <{to}>\r\nSubject: Unusual activity: credential \"{label}\" of {account}\r\nDate: {date}\r\nAuto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe credential \"{label}\" of {account} shows unusual activity:\r\n{event}.\r\n\r\n{what}\r\n\r\nIf this was not expected, the credential may have leaked: rotate it with\r\n  postrider credential rotate {account} {label} --grace 0s\r\n",
            host = self.cfg.hostname,
            label = login.credential,
            account = login.account,
        );
        let head_end = text.find("\r\n\r\n").map_or(text.len(), |p| p + 4);
        let submission = Submission {
            sender: String::new(),
            ret: None,
            envid: None,
            body_type: Some("8BITMIME".into()),
            smtputf8: false,
            recipients: vec![AcceptedRecipient {
                address: to.clone(),
                dsn: RecipientDsn::default(),
                destinations: owners.into_iter().map(Destination::Mailbox).collect(),
            }],
            origin: Origin {
                client_ip: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
                helo: self.cfg.hostname.clone(),
                esmtp: true,
                listener: "alert".into(),
                tls: None,
                auth: None,
                submission: false,
                credential: None,
            },
            head: text.as_bytes()[..head_end].to_vec(),
            body: NewBody::Memory(text.into_bytes()),
            hold: false,
        };
        let id = self
            .svc
            .intake
            .submit(submission)
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(alert = %id, to = %to, "unusual-activity alert queued");
        Ok(())
    }
}
