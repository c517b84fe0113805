//! The certificates the server presents: a default one and any number chosen by the name the
//! client asks for (SNI, RFC 6066 §3), swapped in for new handshakes when their files change or
//! on request (SIGHUP). Sessions already established keep the keys they negotiated: a reload
//! never touches an open connection.
//!
//! A reload that finds a bad file (unreadable, not PEM, a key of another certificate) keeps the
//! certificate loaded before and logs what is wrong and how to fix it.

use crate::certinfo::{CertInfo, format_time, normalize_name};
use crate::tls::{CertificateFiles, LoadedCertificate, TlsError, load_certificate};
use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};
use tokio::sync::watch;

/// Certificates expiring within this many days are warned about in the log.
const EXPIRY_WARNING_DAYS: i64 = 30;

/// What to serve: the default certificate (for clients asking for no name or a name no SNI
/// entry has) and the certificates chosen by SNI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSources {
    pub default: CertificateFiles,
    pub sni: Vec<SniCertificate>,
}

/// A certificate served to clients asking for one of its host names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SniCertificate {
    /// Host names, `*.example.com` for one label under example.com; empty: the DNS names the
    /// certificate itself lists (its subject alternative names).
    pub hostnames: Vec<String>,
    pub files: CertificateFiles,
}

/// One certificate being served, as reported by [`Certificates::served`].
#[derive(Debug, Clone)]
pub struct Served {
    /// `None` for the default certificate; else the host names it is chosen for.
    pub hostnames: Option<Vec<String>>,
    pub files: CertificateFiles,
    pub info: CertInfo,
}

/// What a reload did, per certificate file.
#[derive(Debug, Default)]
pub struct ReloadReport {
    /// Certificate files loaded anew.
    pub reloaded: Vec<PathBuf>,
    /// Certificate files whose new content was refused (the old certificate stays), with why.
    pub failed: Vec<(PathBuf, String)>,
}

/// The certificate resolver of every TLS listener. Cheap to read on each handshake; reloads
/// build a new lookup table and swap it in whole.
pub struct Certificates {
    table: RwLock<Arc<Table>>,
    entries: Mutex<Vec<Entry>>,
}

impl std::fmt::Debug for Certificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificates").finish_non_exhaustive()
    }
}

impl Certificates {
    /// Loads every certificate; any failure is an error (a server should not start with a
    /// certificate missing).
    pub fn load(sources: &TlsSources) -> Result<Arc<Certificates>, TlsError> {
        let mut entries = vec![Entry::load(None, &sources.default)?];
        for s in &sources.sni {
            entries.push(Entry::load(Some(&s.hostnames), &s.files)?);
        }
        for e in &entries {
            e.log_loaded("loaded");
        }
        let table = Table::build(&entries);
        Ok(Arc::new(Certificates {
            table: RwLock::new(Arc::new(table)),
            entries: Mutex::new(entries),
        }))
    }

    /// The TLS 1.2/1.3 server configuration that takes its certificates from here.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<ServerConfig>, TlsError> {
        crate::tls::server_config(self.clone())
    }

    /// The certificate for a client that asked for `sni` (or for no name).
    pub fn pick(&self, sni: Option<&str>) -> Arc<CertifiedKey> {
        self.current().pick(sni)
    }

    /// Every certificate served now, the default first.
    pub fn served(&self) -> Vec<Served> {
        self.lock_entries()
            .iter()
            .map(|e| Served {
                hostnames: e.configured.as_ref().map(|_| e.names.clone()),
                files: e.files.clone(),
                info: e.loaded.info.clone(),
            })
            .collect()
    }

    /// Re-reads every certificate now (SIGHUP). With `sources`, the set of certificates is
    /// replaced first (a changed `[tls]` section): entries with the same files and names keep
    /// their state, new ones are loaded, removed ones are dropped. A certificate that fails to
    /// load keeps the one loaded before; a new entry that fails is left out, and a new default
    /// that fails leaves the old default in place.
    pub fn reload(&self, sources: Option<&TlsSources>) -> ReloadReport {
        let mut report = ReloadReport::default();
        let mut entries = self.lock_entries();
        if let Some(sources) = sources {
            let mut old: Vec<Entry> = std::mem::take(&mut *entries);
            let mut next = Vec::new();
            let specs = std::iter::once((None, &sources.default))
                .chain(sources.sni.iter().map(|s| (Some(&s.hostnames), &s.files)));
            for (i, (hostnames, files)) in specs.enumerate() {
                let configured = hostnames.cloned();
                if let Some(pos) = old
                    .iter()
                    .position(|e| e.configured == configured && &e.files == files)
                {
                    next.push(old.remove(pos));
                    continue;
                }
                match Entry::load(hostnames, files) {
                    Ok(e) => {
                        e.log_loaded("added");
                        report.reloaded.push(files.certificate.clone());
                        next.push(e);
                    }
                    Err(err) => {
                        tracing::error!(
                            certificate = %files.certificate.display(),
                            "TLS certificate not added: {err}"
                        );
                        report
                            .failed
                            .push((files.certificate.clone(), err.to_string()));
                        if i == 0 && !old.is_empty() {
                            // The default must exist: keep the one served so far.
                            next.push(old.remove(0));
                        }
                    }
                }
            }
            *entries = next;
        }
        for e in entries.iter_mut() {
            e.reload(&mut report);
        }
        self.swap(&entries);
        report
    }

    /// Reloads the certificates whose files changed and then stayed unchanged since the last
    /// call, so that a file caught half-written (or a certificate renewed before its key) is
    /// read only once it has settled. Meant to be called every few seconds.
    pub fn reload_changed(&self) -> ReloadReport {
        let mut report = ReloadReport::default();
        let mut entries = self.lock_entries();
        let mut changed = false;
        for e in entries.iter_mut() {
            let now = Stamp::of(&e.files);
            let settled = e.seen.as_ref() == Some(&now);
            let differs = now != e.attempted;
            e.seen = Some(now);
            if differs && settled {
                e.reload(&mut report);
                changed = true;
            }
        }
        if changed {
            self.swap(&entries);
        }
        report
    }

    /// Logs a warning for each certificate that expires within 30 days (or has expired).
    pub fn warn_expiring(&self) {
        for e in self.lock_entries().iter() {
            e.warn_if_expiring();
        }
    }

    fn current(&self) -> Arc<Table> {
        // A poisoned lock means a panic while swapping an Arc: the value is still whole.
        self.table.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn swap(&self, entries: &[Entry]) {
        let table = Arc::new(Table::build(entries));
        *self.table.write().unwrap_or_else(|e| e.into_inner()) = table;
    }

    fn lock_entries(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        // Entries are replaced whole; a panic elsewhere cannot leave one half-written.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.pick(client_hello.server_name()))
    }
}

/// Polls the certificate files every `interval` and reloads those that changed (see
/// [`Certificates::reload_changed`]); once a day, warns about certificates close to expiry.
/// Returns when `shutdown` turns true.
pub async fn watch_certificates(
    certs: Arc<Certificates>,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let day = Duration::from_secs(86_400);
    let mut last_warning = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
        let c = certs.clone();
        // Reading and parsing key files is blocking work.
        let _ = tokio::task::spawn_blocking(move || c.reload_changed()).await;
        if last_warning.elapsed() >= day {
            last_warning = tokio::time::Instant::now();
            certs.warn_expiring();
        }
    }
}

/// One configured certificate and what was loaded from it.
struct Entry {
    /// `None` for the default; else the configured host names (empty: from the certificate).
    configured: Option<Vec<String>>,
    files: CertificateFiles,
    loaded: LoadedCertificate,
    /// The names this entry is chosen for (empty for the default).
    names: Vec<String>,
    /// The files' stamp when they were last read, successfully or not.
    attempted: Stamp,
    /// The files' stamp at the last poll.
    seen: Option<Stamp>,
}

impl Entry {
    fn load(hostnames: Option<&Vec<String>>, files: &CertificateFiles) -> Result<Entry, TlsError> {
        let stamp = Stamp::of(files);
        let loaded = load_certificate(files)?;
        let names = names_for(hostnames, files, &loaded.info)?;
        Ok(Entry {
            configured: hostnames.cloned(),
            files: files.clone(),
            loaded,
            names,
            attempted: stamp.clone(),
            seen: Some(stamp),
        })
    }

    /// Reads the files again; on failure keeps what was loaded and logs why.
    fn reload(&mut self, report: &mut ReloadReport) {
        let stamp = Stamp::of(&self.files);
        self.seen = Some(stamp.clone());
        self.attempted = stamp;
        let result = load_certificate(&self.files).and_then(|loaded| {
            let names = names_for(self.configured.as_ref(), &self.files, &loaded.info)?;
            Ok((loaded, names))
        });
        match result {
            Ok((loaded, names)) => {
                self.loaded = loaded;
                self.names = names;
                self.log_loaded("reloaded");
                report.reloaded.push(self.files.certificate.clone());
            }
            Err(err) => {
                let old = &self.loaded.info;
                tracing::error!(
                    certificate = %self.files.certificate.display(),
                    private_key = %self.files.private_key.display(),
                    "TLS certificate not reloaded: {err}. Still serving the one loaded before \
                     ({}, valid until {}). Fix the files, then send SIGHUP (with \
                     tls.reload_interval set, a change is also picked up by itself)",
                    old.subject,
                    format_time(old.not_after)
                );
                report
                    .failed
                    .push((self.files.certificate.clone(), err.to_string()));
            }
        }
    }

    fn log_loaded(&self, what: &str) {
        let info = &self.loaded.info;
        let served_for = match &self.configured {
            None => "clients without SNI or with a name no other certificate has".to_string(),
            Some(_) => self.names.join(", "),
        };
        tracing::info!(
            certificate = %self.files.certificate.display(),
            subject = %info.subject,
            issuer = %info.issuer,
            not_after = %format_time(info.not_after),
            "TLS certificate {what}, served for {served_for}"
        );
        for name in &self.names {
            if !info.covers(name) {
                tracing::warn!(
                    certificate = %self.files.certificate.display(),
                    "TLS certificate does not cover {name} (it names {}): clients that check \
                     names will refuse it; get a certificate for {name} or remove the name",
                    info.dns_names.join(", ")
                );
            }
        }
        self.warn_if_expiring();
    }

    fn warn_if_expiring(&self) {
        let info = &self.loaded.info;
        let days = info.days_left(unix_now());
        let path = self.files.certificate.display();
        if days < 0 {
            tracing::error!(
                certificate = %path,
                "TLS certificate expired on {}: clients that check certificates refuse it; \
                 renew it and replace the files (picked up without restart)",
                format_time(info.not_after)
            );
        } else if days < EXPIRY_WARNING_DAYS {
            tracing::warn!(
                certificate = %path,
                "TLS certificate expires in {days} days ({}); renew it and replace the files \
                 (picked up without restart)",
                format_time(info.not_after)
            );
        }
    }
}

/// The names an SNI entry is chosen for: the configured ones, else the certificate's own.
fn names_for(
    configured: Option<&Vec<String>>,
    files: &CertificateFiles,
    info: &CertInfo,
) -> Result<Vec<String>, TlsError> {
    let Some(configured) = configured else {
        return Ok(Vec::new());
    };
    if !configured.is_empty() {
        return Ok(configured.iter().map(|n| normalize_name(n)).collect());
    }
    if info.dns_names.is_empty() {
        return Err(TlsError::NoNames {
            path: files.certificate.clone(),
        });
    }
    Ok(info.dns_names.clone())
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The lookup table of one moment: exact names, then `*.` names, then the default.
struct Table {
    default: Arc<CertifiedKey>,
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// Keyed by the part after `*.`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
}

impl Table {
    /// `entries[0]` is the default. When two entries claim a name, the first one listed wins.
    fn build(entries: &[Entry]) -> Table {
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        for e in entries.iter().skip(1) {
            for name in &e.names {
                let map = match name.strip_prefix("*.") {
                    Some(suffix) => wildcard.entry(suffix.to_string()),
                    None => exact.entry(name.clone()),
                };
                map.or_insert_with(|| e.loaded.key.clone());
            }
        }
        Table {
            // `load` always puts the default first and `reload` never removes it.
            default: entries[0].loaded.key.clone(),
            exact,
            wildcard,
        }
    }

    fn pick(&self, sni: Option<&str>) -> Arc<CertifiedKey> {
        let Some(sni) = sni else {
            return self.default.clone();
        };
        let host = normalize_name(sni);
        if let Some(k) = self.exact.get(&host) {
            return k.clone();
        }
        if let Some((_, parent)) = host.split_once('.')
            && let Some(k) = self.wildcard.get(parent)
        {
            return k.clone();
        }
        self.default.clone()
    }
}

/// What identifies a version of a file pair: a hash of each file's content (`None` when it
/// cannot be read). Content rather than modification times: a file touched but unchanged is not
/// reloaded, and a change within the file system's timestamp granularity is still seen. Paths
/// are followed, so a renewal that repoints a symlink (certbot's `live/`) is seen too.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp([Option<u64>; 2]);

impl Stamp {
    fn of(files: &CertificateFiles) -> Stamp {
        use std::hash::{DefaultHasher, Hash, Hasher};
        let one = |p: &PathBuf| {
            std::fs::read(p).ok().map(|bytes| {
                let mut h = DefaultHasher::new();
                bytes.hash(&mut h);
                h.finish()
            })
        };
        Stamp([one(&files.certificate), one(&files.private_key)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn write_pair(dir: &Path, name: &str, hosts: &[&str]) -> CertificateFiles {
        let c = rcgen::generate_simple_self_signed(
            hosts.iter().map(|h| h.to_string()).collect::<Vec<_>>(),
        )
        .unwrap();
        let files = CertificateFiles {
            certificate: dir.join(format!("{name}.crt")),
            private_key: dir.join(format!("{name}.key")),
        };
        std::fs::write(&files.certificate, c.cert.pem()).unwrap();
        std::fs::write(&files.private_key, c.signing_key.serialize_pem()).unwrap();
        files
    }

    fn leaf(k: &CertifiedKey) -> Vec<u8> {
        k.cert[0].to_vec()
    }

    fn leaf_of(files: &CertificateFiles) -> Vec<u8> {
        leaf(&load_certificate(files).unwrap().key)
    }

    #[test]
    fn sni_picks_exact_names_then_one_label_wildcards_then_the_default() {
        let dir = tempfile::tempdir().unwrap();
        let d = write_pair(dir.path(), "default", &["mx.test"]);
        let a = write_pair(dir.path(), "a", &["mail.example.com"]);
        let w = write_pair(dir.path(), "w", &["*.example.net"]);
        let x = write_pair(dir.path(), "x", &["exact.example.net"]);
        let certs = Certificates::load(&TlsSources {
            default: d.clone(),
            sni: vec![
                SniCertificate {
                    hostnames: vec!["Mail.Example.com.".into()],
                    files: a.clone(),
                },
                SniCertificate {
                    hostnames: vec![],
                    files: w.clone(),
                },
                SniCertificate {
                    hostnames: vec![],
                    files: x.clone(),
                },
            ],
        })
        .unwrap();
        let pick = |sni: Option<&str>| leaf(&certs.pick(sni));
        assert_eq!(pick(Some("mail.example.com")), leaf_of(&a));
        assert_eq!(pick(Some("MAIL.example.COM.")), leaf_of(&a));
        assert_eq!(pick(Some("any.example.net")), leaf_of(&w));
        assert_eq!(pick(Some("exact.example.net")), leaf_of(&x));
        assert_eq!(pick(Some("a.b.example.net")), leaf_of(&d));
        assert_eq!(pick(Some("example.net")), leaf_of(&d));
        assert_eq!(pick(Some("unknown.test")), leaf_of(&d));
        assert_eq!(pick(None), leaf_of(&d));
        let served = certs.served();
        assert_eq!(served.len(), 4);
        assert_eq!(served[0].hostnames, None);
        assert_eq!(served[2].hostnames, Some(vec!["*.example.net".to_string()]));
    }

    #[test]
    fn a_changed_pair_is_taken_once_settled_and_a_bad_one_keeps_the_old() {
        let dir = tempfile::tempdir().unwrap();
        let d = write_pair(dir.path(), "d", &["mx.test"]);
        let certs = Certificates::load(&TlsSources {
            default: d.clone(),
            sni: vec![],
        })
        .unwrap();
        let first = leaf(&certs.pick(None));
        assert!(certs.reload_changed().reloaded.is_empty());

        // A key that does not belong to the certificate: refused, the old one stays.
        let other = write_pair(dir.path(), "other", &["mx.test"]);
        std::fs::copy(&other.private_key, &d.private_key).unwrap();
        let r = certs.reload_changed();
        assert!(
            r.reloaded.is_empty() && r.failed.is_empty(),
            "not settled yet"
        );
        let r = certs.reload_changed();
        assert_eq!(r.failed.len(), 1, "{r:?}");
        assert!(r.failed[0].1.contains("does not belong"), "{r:?}");
        assert_eq!(leaf(&certs.pick(None)), first);
        assert!(
            certs.reload_changed().failed.is_empty(),
            "tried once per change"
        );

        // The matching certificate arrives: taken after it settled.
        std::fs::copy(&other.certificate, &d.certificate).unwrap();
        certs.reload_changed();
        let r = certs.reload_changed();
        assert_eq!(r.reloaded.len(), 1, "{r:?}");
        assert_eq!(leaf(&certs.pick(None)), leaf_of(&other));
    }

    #[test]
    fn a_forced_reload_reads_at_once_and_can_change_the_set_of_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let d = write_pair(dir.path(), "d", &["mx.test"]);
        let a = write_pair(dir.path(), "a", &["a.example"]);
        let certs = Certificates::load(&TlsSources {
            default: d.clone(),
            sni: vec![],
        })
        .unwrap();
        assert_eq!(leaf(&certs.pick(Some("a.example"))), leaf_of(&d));

        let sources = TlsSources {
            default: d.clone(),
            sni: vec![SniCertificate {
                hostnames: vec![],
                files: a.clone(),
            }],
        };
        let r = certs.reload(Some(&sources));
        assert!(r.failed.is_empty(), "{r:?}");
        assert_eq!(leaf(&certs.pick(Some("a.example"))), leaf_of(&a));

        // A new default that does not load leaves the old default in place.
        let broken = CertificateFiles {
            certificate: dir.path().join("missing.crt"),
            private_key: dir.path().join("missing.key"),
        };
        let r = certs.reload(Some(&TlsSources {
            default: broken,
            sni: sources.sni.clone(),
        }));
        assert_eq!(r.failed.len(), 1, "{r:?}");
        assert_eq!(leaf(&certs.pick(None)), leaf_of(&d));
        assert_eq!(leaf(&certs.pick(Some("a.example"))), leaf_of(&a));

        // Replaced files are read at once on a forced reload.
        let b = write_pair(dir.path(), "b", &["mx.test"]);
        std::fs::copy(&b.certificate, &d.certificate).unwrap();
        std::fs::copy(&b.private_key, &d.private_key).unwrap();
        let r = certs.reload(None);
        assert!(r.failed.is_empty(), "{r:?}");
        assert_eq!(leaf(&certs.pick(None)), leaf_of(&b));
    }

    #[test]
    fn an_sni_certificate_without_names_needs_hostnames() {
        let dir = tempfile::tempdir().unwrap();
        let d = write_pair(dir.path(), "d", &["mx.test"]);
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "no names");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let n = CertificateFiles {
            certificate: dir.path().join("n.crt"),
            private_key: dir.path().join("n.key"),
        };
        std::fs::write(&n.certificate, cert.pem()).unwrap();
        std::fs::write(&n.private_key, key.serialize_pem()).unwrap();
        let err = Certificates::load(&TlsSources {
            default: d,
            sni: vec![SniCertificate {
                hostnames: vec![],
                files: n,
            }],
        })
        .unwrap_err();
        assert!(matches!(err, TlsError::NoNames { .. }), "{err}");
    }
}
