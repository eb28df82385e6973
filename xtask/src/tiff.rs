//! A tiny little-endian TIFF IFD writer.
//!
//! EXIF is a TIFF structure, and so is the `huge-header-tiff.tiff` bad fixture. Writing the
//! few entries we need by hand keeps the fixtures byte-for-byte under our control
//! (no extra dependency, no encoder defaults that could change between versions).

use anyhow::{Context, Result};

pub const BYTE: u16 = 1;
pub const ASCII: u16 = 2;
pub const SHORT: u16 = 3;
pub const LONG: u16 = 4;
pub const RATIONAL: u16 = 5;
pub const UNDEFINED: u16 = 7;

/// One IFD entry with its value already serialised little-endian.
pub struct Entry {
    tag: u16,
    typ: u16,
    count: u32,
    data: Vec<u8>,
}

impl Entry {
    /// A NUL-terminated ASCII string (the NUL is counted, as TIFF requires).
    pub fn ascii(tag: u16, s: &str) -> Result<Entry> {
        let mut data = s.as_bytes().to_vec();
        data.push(0);
        Entry::raw(tag, ASCII, data.len(), data)
    }

    pub fn short(tag: u16, v: u16) -> Entry {
        Entry {
            tag,
            typ: SHORT,
            count: 1,
            data: v.to_le_bytes().to_vec(),
        }
    }

    pub fn shorts(tag: u16, vs: &[u16]) -> Result<Entry> {
        let data = vs.iter().flat_map(|v| v.to_le_bytes()).collect();
        Entry::raw(tag, SHORT, vs.len(), data)
    }

    pub fn long(tag: u16, v: u32) -> Entry {
        Entry {
            tag,
            typ: LONG,
            count: 1,
            data: v.to_le_bytes().to_vec(),
        }
    }

    pub fn rationals(tag: u16, vs: &[(u32, u32)]) -> Result<Entry> {
        let data = vs
            .iter()
            .flat_map(|(n, d)| n.to_le_bytes().into_iter().chain(d.to_le_bytes()))
            .collect();
        Entry::raw(tag, RATIONAL, vs.len(), data)
    }

    /// BYTE or UNDEFINED data: one count per byte.
    pub fn bytes(tag: u16, typ: u16, data: &[u8]) -> Result<Entry> {
        Entry::raw(tag, typ, data.len(), data.to_vec())
    }

    fn raw(tag: u16, typ: u16, count: usize, data: Vec<u8>) -> Result<Entry> {
        let count = u32::try_from(count).context("TIFF entry count does not fit in u32")?;
        Ok(Entry {
            tag,
            typ,
            count,
            data,
        })
    }

    /// Bytes this entry needs outside the 12-byte entry itself. Values of four bytes
    /// or fewer live inline; longer ones go to the data area, word-aligned.
    fn external_len(&self) -> usize {
        if self.data.len() <= 4 {
            0
        } else {
            self.data.len() + self.data.len() % 2
        }
    }
}

/// Total size of an IFD (entry table, next-IFD link and out-of-line values). It does
/// not depend on any value, so callers can lay out offsets before writing.
pub fn ifd_size(entries: &[Entry]) -> usize {
    2 + 12 * entries.len() + 4 + entries.iter().map(Entry::external_len).sum::<usize>()
}

/// Appends an IFD to `out`. Offsets in TIFF are relative to the start of the TIFF
/// header, so `out` must begin with that header. Entries are sorted by tag because
/// the TIFF spec requires ascending order and strict readers check it.
pub fn write_ifd(out: &mut Vec<u8>, mut entries: Vec<Entry>, next_ifd: u32) -> Result<()> {
    entries.sort_by_key(|e| e.tag);
    let n = u16::try_from(entries.len()).context("too many IFD entries")?;
    let mut data_offset = out.len() + 2 + 12 * entries.len() + 4;
    let mut data_area = Vec::new();

    out.extend_from_slice(&n.to_le_bytes());
    for e in &entries {
        out.extend_from_slice(&e.tag.to_le_bytes());
        out.extend_from_slice(&e.typ.to_le_bytes());
        out.extend_from_slice(&e.count.to_le_bytes());
        if e.data.len() <= 4 {
            let mut inline = [0u8; 4];
            inline[..e.data.len()].copy_from_slice(&e.data);
            out.extend_from_slice(&inline);
        } else {
            let off = u32::try_from(data_offset).context("TIFF offset does not fit in u32")?;
            out.extend_from_slice(&off.to_le_bytes());
            data_area.extend_from_slice(&e.data);
            if e.data.len() % 2 == 1 {
                data_area.push(0);
            }
            data_offset += e.external_len();
        }
    }
    out.extend_from_slice(&next_ifd.to_le_bytes());
    out.extend_from_slice(&data_area);
    Ok(())
}

/// Little-endian TIFF header whose first IFD starts right after it, at offset 8.
pub fn header() -> Vec<u8> {
    let mut out = b"II".to_vec();
    out.extend_from_slice(&42u16.to_le_bytes());
    out.extend_from_slice(&8u32.to_le_bytes());
    out
}

/// Offset helper: TIFF offsets are u32.
pub fn offset(v: usize) -> Result<u32> {
    u32::try_from(v).context("TIFF offset does not fit in u32")
}

/// The EXIF payload of a JPEG APP1 segment (`Exif\0\0` + TIFF) carrying the metadata
/// that privacy tests look for: camera make/model, a body serial number in the Exif
/// sub-IFD and a GPS position (48°51'24"N 2°21'3"E, central Paris).
/// `width`×`height` are the stored pixel dimensions. The remaining tags are the ones
/// the EXIF spec marks required, so `exiftool -validate` stays quiet.
pub fn exif_app1(orientation: u16, width: u32, height: u32) -> Result<Vec<u8>> {
    let exif_ifd = vec![
        Entry::bytes(0x9000, UNDEFINED, b"0232")?,       // ExifVersion
        Entry::bytes(0x9101, UNDEFINED, &[1, 2, 3, 0])?, // ComponentsConfiguration: YCbCr
        Entry::bytes(0xA000, UNDEFINED, b"0100")?,       // FlashpixVersion
        Entry::short(0xA001, 1),                         // ColorSpace: sRGB
        Entry::long(0xA002, width),                      // PixelXDimension
        Entry::long(0xA003, height),                     // PixelYDimension
        Entry::ascii(0xA431, "SN-123456")?,              // BodySerialNumber
    ];
    let gps_ifd = vec![
        Entry::bytes(0x0000, BYTE, &[2, 3, 0, 0])?, // GPSVersionID
        Entry::ascii(0x0001, "N")?,
        Entry::rationals(0x0002, &[(48, 1), (51, 1), (24, 1)])?,
        Entry::ascii(0x0003, "E")?,
        Entry::rationals(0x0004, &[(2, 1), (21, 1), (3, 1)])?,
    ];
    // IFD0 sizes do not depend on the pointer values, so use placeholders to measure.
    let ifd0 = |exif_ptr: u32, gps_ptr: u32| -> Result<Vec<Entry>> {
        Ok(vec![
            Entry::ascii(0x010F, "ResizeTestCam")?, // Make
            Entry::ascii(0x0110, "Fixture")?,       // Model
            Entry::short(0x0112, orientation),      // Orientation
            Entry::rationals(0x011A, &[(72, 1)])?,  // XResolution
            Entry::rationals(0x011B, &[(72, 1)])?,  // YResolution
            Entry::short(0x0128, 2),                // ResolutionUnit: inches
            Entry::short(0x0213, 1),                // YCbCrPositioning: centred
            Entry::long(0x8769, exif_ptr),          // ExifIFDPointer
            Entry::long(0x8825, gps_ptr),           // GPSInfoIFDPointer
        ])
    };
    let exif_at = 8 + ifd_size(&ifd0(0, 0)?);
    let gps_at = exif_at + ifd_size(&exif_ifd);

    let mut tiff = header();
    write_ifd(&mut tiff, ifd0(offset(exif_at)?, offset(gps_at)?)?, 0)?;
    write_ifd(&mut tiff, exif_ifd, 0)?;
    write_ifd(&mut tiff, gps_ifd, 0)?;

    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&tiff);
    Ok(app1)
}

/// A TIFF that declares a `width`×`height` RGB image but carries only 16 bytes of
/// pixel data: the header parses, decoding must be refused (or fail).
pub fn huge_header_tiff(width: u32, height: u32) -> Result<Vec<u8>> {
    let entries = |strip_at: u32| -> Result<Vec<Entry>> {
        Ok(vec![
            Entry::long(256, width),         // ImageWidth
            Entry::long(257, height),        // ImageLength
            Entry::shorts(258, &[8, 8, 8])?, // BitsPerSample
            Entry::short(259, 1),            // Compression: none
            Entry::short(262, 2),            // PhotometricInterpretation: RGB
            Entry::long(273, strip_at),      // StripOffsets
            Entry::short(277, 3),            // SamplesPerPixel
            Entry::long(278, height),        // RowsPerStrip: one strip
            Entry::long(279, 16),            // StripByteCounts (a lie, on purpose)
            Entry::short(284, 1),            // PlanarConfiguration: chunky
        ])
    };
    let strip_at = 8 + ifd_size(&entries(0)?);
    let mut out = header();
    write_ifd(&mut out, entries(offset(strip_at)?)?, 0)?;
    out.extend_from_slice(&[0u8; 16]);
    Ok(out)
}

/// A small `width`×`height` RGB TIFF whose StripOffsets and StripByteCounts claim
/// 2^30 strips each (8 GiB of entries) at offsets past the end of the file.
pub fn absurd_strips_tiff(width: u32, height: u32) -> Result<Vec<u8>> {
    const STRIPS: u32 = 1 << 30;
    let entries = vec![
        Entry::long(256, width),         // ImageWidth
        Entry::long(257, height),        // ImageLength
        Entry::shorts(258, &[8, 8, 8])?, // BitsPerSample
        Entry::short(259, 1),            // Compression: none
        Entry::short(262, 2),            // PhotometricInterpretation: RGB
        Entry {
            tag: 273, // StripOffsets
            typ: LONG,
            count: STRIPS,
            data: 0x7FFF_FFF0u32.to_le_bytes().to_vec(),
        },
        Entry::short(277, 3), // SamplesPerPixel
        Entry::long(278, 1),  // RowsPerStrip
        Entry {
            tag: 279, // StripByteCounts
            typ: LONG,
            count: STRIPS,
            data: 0x7FFF_FFF0u32.to_le_bytes().to_vec(),
        },
        Entry::short(284, 1), // PlanarConfiguration: chunky
    ];
    let mut out = header();
    write_ifd(&mut out, entries, 0)?;
    Ok(out)
}
