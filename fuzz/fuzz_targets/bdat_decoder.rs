//! BDAT checking: bytes pass through unchanged and the flaws do not depend on where the chunks
//! are cut (chunk size from the first byte).
#![no_main]

use libfuzzer_sys::fuzz_target;
use smtp_codec::{BdatDecoder, BodyFlaws};

fn run<'a>(chunks: impl Iterator<Item = &'a [u8]>, max: usize) -> (Vec<u8>, BodyFlaws) {
    let mut decoder = BdatDecoder::new(max);
    let mut out = Vec::new();
    for chunk in chunks {
        decoder.decode(chunk, &mut out);
    }
    decoder.finish();
    (out, decoder.flaws())
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, input)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(first % 64) + 1;
    let max = if first & 0x80 != 0 {
        1000
    } else {
        8 + usize::from(first % 16)
    };
    let whole = run(std::iter::once(input), max);
    assert_eq!(whole.0, input);
    assert_eq!(run(input.chunks(chunk), max), whole);
    // Reference flaws, byte by byte.
    let bare_cr = input
        .iter()
        .enumerate()
        .any(|(i, &b)| b == b'\r' && input.get(i + 1) != Some(&b'\n'));
    let bare_lf = input
        .iter()
        .enumerate()
        .any(|(i, &b)| b == b'\n' && (i == 0 || input[i - 1] != b'\r'));
    assert_eq!(whole.1.bare_cr, bare_cr);
    assert_eq!(whole.1.bare_lf, bare_lf);
    assert_eq!(whole.1.nul, input.contains(&0));
});
