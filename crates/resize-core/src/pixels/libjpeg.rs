//! libjpeg's error handler for decoding: its fatal errors and the warnings
//! that mean pixels are missing unwind out of libjpeg, so an image is
//! published only when all of it was decoded.
//!
//! libjpeg-turbo only *warns* when data is missing or corrupt: it fills the
//! rest of a truncated file with grey (a "premature end"), skips to the
//! next marker after a bad Huffman code, and goes on. sharp refuses such
//! files by default (`failOn: 'warning'`); so do we, warning by warning
//! ([`fatal_warning`]): the ones that mean missing or wrong pixels fail the
//! image, the ones about metadata (an unknown JFIF revision, a broken ICC
//! chunk, an unknown Adobe transform) or harmless padding
//! (extraneous bytes before a marker, which cameras write) do not.
//!
//! The only `unsafe` in resize-core is here: setting up libjpeg's standard
//! error manager and reading its message code, which is how a libjpeg
//! application reads warnings; each use says why it is sound.

use std::os::raw::c_int;

use mozjpeg::decompress::DecompressBuilder;
use mozjpeg_sys as ffi;

/// A decompressor builder with this module's error handler.
pub(super) fn decompress() -> DecompressBuilder<'static> {
    DecompressBuilder::new().with_err(error_mgr())
}

fn error_mgr() -> ffi::jpeg_error_mgr {
    // SAFETY: `jpeg_error_mgr` holds integers, raw pointers and `Option`s of
    // function pointers, all valid when zeroed; `jpeg_std_error` then fills
    // every field (the message tables it points to are static), and keeps
    // no pointer to the struct itself, so moving it afterwards is sound.
    let mut err: ffi::jpeg_error_mgr = unsafe { std::mem::zeroed() };
    unsafe { ffi::jpeg_std_error(&mut err) };
    err.error_exit = Some(error_exit);
    err.emit_message = Some(emit_message);
    err
}

/// What a warning means for the image: `Some(reason)` when pixels are
/// missing or wrong, `None` when the pixels are whole.
pub(super) fn fatal_warning(code: c_int) -> Option<&'static str> {
    Some(match code {
        // The file ends inside the image data: libjpeg fills the rest grey.
        ffi::JWRN_JPEG_EOF => "file is truncated (premature end of the image data)",
        // A marker where entropy-coded data should go on: data is missing,
        // what follows is decoded as grey.
        ffi::JWRN_HIT_MARKER => "corrupt data: the image data ends early (a marker inside a scan)",
        ffi::JWRN_HUFF_BAD_CODE => "corrupt data: bad Huffman code",
        // A restart marker out of order: blocks were lost.
        ffi::JWRN_MUST_RESYNC => "corrupt data: a restart marker is missing or out of order",
        // Progressive scans that refine what was never sent, or twice.
        ffi::JWRN_BOGUS_PROGRESSION => "corrupt data: inconsistent progressive scans",
        // JWRN_EXTRANEOUS_DATA (padding before a marker), JWRN_NOT_SEQUENTIAL
        // (odd but ignored scan parameters), JWRN_JFIF_MAJOR, JWRN_BOGUS_ICC,
        // JWRN_ADOBE_XFORM: the pixels are whole. JWRN_TOO_MUCH_DATA is the
        // application's own mistake, not the file's.
        _ => return None,
    })
}

/// libjpeg's `error_exit`: must not return. Unwinds with the formatted
/// message, which the decoders catch (`decode::decode_jpeg`).
extern "C-unwind" fn error_exit(cinfo: &mut ffi::jpeg_common_struct) {
    let message = format_message(cinfo);
    std::panic::resume_unwind(Box::new(message));
}

/// libjpeg's `emit_message`: trace messages (level ≥ 0) are dropped; a
/// warning (level −1) that means missing pixels unwinds like an error.
extern "C-unwind" fn emit_message(cinfo: &mut ffi::jpeg_common_struct, level: c_int) {
    if level >= 0 {
        return;
    }
    // SAFETY: libjpeg calls this with the struct it was created with, whose
    // `err` is the manager `decompress` installed: boxed by the mozjpeg
    // crate and alive as long as the decompressor.
    let code = unsafe { cinfo.err.as_ref() }.map_or(0, |err| err.msg_code);
    if let Some(reason) = fatal_warning(code) {
        std::panic::resume_unwind(Box::new(reason.to_owned()));
    }
}

/// libjpeg's text for the current message, through its `format_message`.
fn format_message(cinfo: &mut ffi::jpeg_common_struct) -> String {
    // SAFETY: as in `emit_message`, `err` is our live manager.
    let Some(err) = (unsafe { cinfo.err.as_ref() }) else {
        return "libjpeg failed".to_owned();
    };
    let code = err.msg_code;
    let Some(format) = err.format_message else {
        return format!("libjpeg error {code}");
    };
    let mut buffer = [0u8; 80];
    // SAFETY: `format_message` writes at most JMSG_LENGTH_MAX (80) bytes,
    // NUL included, into the buffer it is given. mozjpeg-sys declares the
    // buffer `&[u8; 80]` though C writes to it; the two reference types
    // have the same ABI (a pointer), and transmuting to the `&mut` type
    // tells Rust the buffer is written, as the mozjpeg crate does too.
    unsafe {
        type Written = unsafe extern "C-unwind" fn(&mut ffi::jpeg_common_struct, &mut [u8; 80]);
        let format: Written = std::mem::transmute::<
            unsafe extern "C-unwind" fn(&mut ffi::jpeg_common_struct, &[u8; 80]),
            Written,
        >(format);
        format(cinfo, &mut buffer);
    }
    let text = buffer.split(|&b| b == 0).next().unwrap_or_default();
    String::from_utf8_lossy(text).into_owned()
}
