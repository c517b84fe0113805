//! A bounded scan of a message's header section (RFC 5322 §2.2): which fields are present and
//! how many Received fields there are. Continuation lines (starting with SP or HTAB) belong to
//! the field before them and are skipped.

#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct HeaderFacts {
    pub received: usize,
    pub has_message_id: bool,
    pub has_date: bool,
}

/// Scans `head`, the start of the message, up to the empty line that ends the header section.
pub(crate) fn scan(head: &[u8]) -> HeaderFacts {
    let mut facts = HeaderFacts::default();
    for line in head.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            continue;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = line[..colon].trim_ascii_end();
        if name.eq_ignore_ascii_case(b"received") {
            facts.received += 1;
        } else if name.eq_ignore_ascii_case(b"message-id") {
            facts.has_message_id = true;
        } else if name.eq_ignore_ascii_case(b"date") {
            facts.has_date = true;
        }
    }
    facts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_counts_received_and_finds_ids_only_in_the_header_section() {
        let msg = b"Received: a\r\n\tfolded Received: b\r\nRECEIVED : c\r\nMessage-ID: <x@y>\r\n\r\nDate: not a header\r\nReceived: body\r\n";
        assert_eq!(
            scan(msg),
            HeaderFacts {
                received: 2,
                has_message_id: true,
                has_date: false
            }
        );
    }

    #[test]
    fn scan_of_a_message_without_headers_finds_nothing() {
        assert_eq!(scan(b"\r\nbody"), HeaderFacts::default());
        assert_eq!(scan(b""), HeaderFacts::default());
    }
}
