//! TensorBoard event files, written without TensorFlow: TFRecord framing
//! (length, masked CRC-32C of the length, payload, masked CRC-32C of the
//! payload) around `Event` protocol buffers holding scalar summaries. The
//! three messages used are encoded by hand (a protobuf crate would cost more
//! than the twenty lines below), and read back by [`read`] for the tests.
//!
//! Field numbers, from tensorflow/core/util/event.proto and
//! summary.proto: Event { double wall_time = 1; int64 step = 2;
//! string file_version = 3; Summary summary = 5; }, Summary { repeated Value
//! value = 1; }, Summary.Value { string tag = 1; float simple_value = 2;
//! Image image = 4; TensorProto tensor = 8; SummaryMetadata metadata = 9; },
//! Summary.Image { int32 height = 1; int32 width = 2; int32 colorspace = 3;
//! bytes encoded_image_string = 4; }, SummaryMetadata { PluginData
//! plugin_data = 1 { string plugin_name = 1; bytes content = 2; } }.

use std::io::Write;

/// The event file's name, in a run directory or an export: TensorBoard finds
/// event files by "tfevents" in the name, and one fixed name lets a resumed
/// run rewrite its file instead of adding a second.
pub const FILE_NAME: &str = "events.out.tfevents.probdrop-tui";

/// What TensorBoard expects the first event of a file to say.
pub const FILE_VERSION: &str = "brain.Event:2";

const WIRE_VARINT: u64 = 0;
const WIRE_FIXED64: u64 = 1;
const WIRE_BYTES: u64 = 2;
const WIRE_FIXED32: u64 = 5;

/// One event as the tests read it back.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub wall_time: f64,
    pub step: i64,
    pub file_version: Option<String>,
    /// (tag, value) scalars.
    pub scalars: Vec<(String, f32)>,
    /// (tag, image) pictures.
    pub images: Vec<(String, Image)>,
    /// Values a TensorBoard plugin reads from its metadata (the HParams
    /// dashboard's).
    pub plugin_values: Vec<PluginValue>,
}

/// A summary value that carries a plugin's data: `metadata.plugin_data` with
/// an empty float tensor, as TensorBoard's own summaries write them.
#[derive(Clone, Debug, PartialEq)]
pub struct PluginValue {
    pub tag: String,
    pub plugin: String,
    pub content: Vec<u8>,
}

/// An encoded picture, as TensorBoard's Images dashboard shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct Image {
    pub height: u32,
    pub width: u32,
    /// 1 grey, 3 RGB, 4 RGBA.
    pub colorspace: u32,
    /// PNG bytes.
    pub png: Vec<u8>,
}

pub fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub fn key(out: &mut Vec<u8>, field: u64, wire: u64) {
    varint(out, (field << 3) | wire);
}

pub fn bytes_field(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    key(out, field, WIRE_BYTES);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// The protobuf bytes of one event.
pub fn encode(event: &Event) -> Vec<u8> {
    let mut out = Vec::new();
    key(&mut out, 1, WIRE_FIXED64);
    out.extend_from_slice(&event.wall_time.to_le_bytes());
    key(&mut out, 2, WIRE_VARINT);
    varint(&mut out, event.step as u64);
    if let Some(version) = &event.file_version {
        bytes_field(&mut out, 3, version.as_bytes());
    }
    if !event.scalars.is_empty() || !event.images.is_empty() || !event.plugin_values.is_empty() {
        let mut summary = Vec::new();
        for (tag, value) in &event.scalars {
            let mut v = Vec::new();
            bytes_field(&mut v, 1, tag.as_bytes());
            key(&mut v, 2, WIRE_FIXED32);
            v.extend_from_slice(&value.to_le_bytes());
            bytes_field(&mut summary, 1, &v);
        }
        for (tag, image) in &event.images {
            let mut v = Vec::new();
            bytes_field(&mut v, 1, tag.as_bytes());
            bytes_field(&mut v, 4, &encode_image(image));
            bytes_field(&mut summary, 1, &v);
        }
        for value in &event.plugin_values {
            bytes_field(&mut summary, 1, &encode_plugin_value(value));
        }
        bytes_field(&mut out, 5, &summary);
    }
    out
}

/// TensorProto { dtype: DT_FLOAT, tensor_shape { dim { size: 0 } } }.
const NULL_TENSOR: [u8; 6] = [0x08, 0x01, 0x12, 0x02, 0x12, 0x00];

/// Summary.Value { tag = 1; tensor = 8; metadata = 9 { plugin_data = 1 {
/// plugin_name = 1; content = 2; } } }.
fn encode_plugin_value(value: &PluginValue) -> Vec<u8> {
    let mut plugin_data = Vec::new();
    bytes_field(&mut plugin_data, 1, value.plugin.as_bytes());
    bytes_field(&mut plugin_data, 2, &value.content);
    let mut metadata = Vec::new();
    bytes_field(&mut metadata, 1, &plugin_data);
    let mut out = Vec::new();
    bytes_field(&mut out, 1, value.tag.as_bytes());
    bytes_field(&mut out, 8, &NULL_TENSOR);
    bytes_field(&mut out, 9, &metadata);
    out
}

/// The pieces of protobuf encoding the HParams messages need, and of
/// decoding for reading them back.
pub mod proto {
    pub(crate) use super::{Field, Fields, text};
    pub use super::{bytes_field, key, varint};

    /// A `double` field.
    pub fn double_field(out: &mut Vec<u8>, field: u64, value: f64) {
        key(out, field, super::WIRE_FIXED64);
        out.extend_from_slice(&value.to_le_bytes());
    }

    /// A varint field (ints, enums, bools).
    pub fn varint_field(out: &mut Vec<u8>, field: u64, value: u64) {
        key(out, field, super::WIRE_VARINT);
        varint(out, value);
    }
}

fn encode_image(image: &Image) -> Vec<u8> {
    let mut out = Vec::new();
    for (field, value) in [(1, image.height), (2, image.width), (3, image.colorspace)] {
        key(&mut out, field, WIRE_VARINT);
        varint(&mut out, u64::from(value));
    }
    bytes_field(&mut out, 4, &image.png);
    out
}

/// TFRecord's checksum: CRC-32C rotated and offset, so that a CRC of data
/// holding CRCs stays well distributed.
fn masked_crc(bytes: &[u8]) -> u32 {
    let crc = crc32c::crc32c(bytes);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// Frames one record.
pub fn write_record(out: &mut impl Write, payload: &[u8]) -> std::io::Result<()> {
    let len = (payload.len() as u64).to_le_bytes();
    out.write_all(&len)?;
    out.write_all(&masked_crc(&len).to_le_bytes())?;
    out.write_all(payload)?;
    out.write_all(&masked_crc(payload).to_le_bytes())
}

/// The file's first event, which names the format version.
pub fn version_event(wall_time: f64) -> Event {
    Event {
        wall_time,
        step: 0,
        file_version: Some(FILE_VERSION.into()),
        scalars: Vec::new(),
        images: Vec::new(),
        plugin_values: Vec::new(),
    }
}

/// The events of a file, checking every CRC.
pub fn read(bytes: &[u8]) -> Result<Vec<Event>, String> {
    let mut events = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let header = bytes.get(at..at + 12).ok_or("truncated record header")?;
        let len_bytes: [u8; 8] = header[..8].try_into().unwrap_or_default();
        let stored = u32::from_le_bytes(header[8..12].try_into().unwrap_or_default());
        if masked_crc(&len_bytes) != stored {
            return Err(format!("bad length CRC at byte {at}"));
        }
        let len = u64::from_le_bytes(len_bytes) as usize;
        let payload = bytes
            .get(at + 12..at + 12 + len)
            .ok_or("truncated record")?;
        let crc = bytes
            .get(at + 12 + len..at + 16 + len)
            .ok_or("truncated CRC")?;
        if masked_crc(payload).to_le_bytes() != crc {
            return Err(format!("bad data CRC at byte {at}"));
        }
        events.push(decode(payload)?);
        at += 16 + len;
    }
    Ok(events)
}

/// A protobuf reader over one message: (field, wire type, value bytes or
/// varint).
pub(crate) struct Fields<'a> {
    pub(crate) bytes: &'a [u8],
}

pub(crate) enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

impl<'a> Fields<'a> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self.bytes.split_first().ok_or("truncated varint")?;
            self.bytes = rest;
            value |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(value);
            }
        }
        Err("varint too long".into())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.bytes.len() < n {
            return Err("truncated field".into());
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    pub(crate) fn next(&mut self) -> Result<Option<(u64, Field<'a>)>, String> {
        if self.bytes.is_empty() {
            return Ok(None);
        }
        let k = self.varint()?;
        let field = match k & 7 {
            WIRE_VARINT => Field::Varint(self.varint()?),
            WIRE_FIXED64 => Field::Bytes(self.take(8)?),
            WIRE_FIXED32 => Field::Bytes(self.take(4)?),
            WIRE_BYTES => {
                let n = self.varint()? as usize;
                Field::Bytes(self.take(n)?)
            }
            other => return Err(format!("wire type {other} not used here")),
        };
        Ok(Some((k >> 3, field)))
    }
}

pub(crate) fn text(bytes: &[u8]) -> Result<String, String> {
    String::from_utf8(bytes.to_vec()).map_err(|e| e.to_string())
}

fn decode(payload: &[u8]) -> Result<Event, String> {
    let mut event = Event {
        wall_time: 0.0,
        step: 0,
        file_version: None,
        scalars: Vec::new(),
        images: Vec::new(),
        plugin_values: Vec::new(),
    };
    let mut fields = Fields { bytes: payload };
    while let Some((number, field)) = fields.next()? {
        match (number, field) {
            (1, Field::Bytes(b)) => {
                event.wall_time = f64::from_le_bytes(b.try_into().unwrap_or_default())
            }
            (2, Field::Varint(v)) => event.step = v as i64,
            (3, Field::Bytes(b)) => event.file_version = Some(text(b)?),
            (5, Field::Bytes(b)) => decode_summary(b, &mut event)?,
            _ => {}
        }
    }
    Ok(event)
}

/// A summary's values into `event`: scalars, pictures and plugin data.
fn decode_summary(bytes: &[u8], event: &mut Event) -> Result<(), String> {
    let mut values = Fields { bytes };
    while let Some((number, field)) = values.next()? {
        let (1, Field::Bytes(value)) = (number, field) else {
            continue;
        };
        let (mut tag, mut scalar, mut image, mut plugin) = (String::new(), None, None, None);
        let mut parts = Fields { bytes: value };
        while let Some((n, f)) = parts.next()? {
            match (n, f) {
                (1, Field::Bytes(b)) => tag = text(b)?,
                (2, Field::Bytes(b)) => {
                    scalar = Some(f32::from_le_bytes(b.try_into().unwrap_or_default()))
                }
                (4, Field::Bytes(b)) => image = Some(decode_image(b)?),
                (9, Field::Bytes(b)) => plugin = decode_plugin_data(b)?,
                _ => {}
            }
        }
        match (scalar, image, plugin) {
            (_, Some(image), _) => event.images.push((tag, image)),
            (Some(v), None, _) => event.scalars.push((tag, v)),
            (None, None, Some((plugin, content))) => event.plugin_values.push(PluginValue {
                tag,
                plugin,
                content,
            }),
            (None, None, None) => {}
        }
    }
    Ok(())
}

/// SummaryMetadata's plugin name and content, if it names a plugin.
fn decode_plugin_data(metadata: &[u8]) -> Result<Option<(String, Vec<u8>)>, String> {
    let mut found = None;
    let mut fields = Fields { bytes: metadata };
    while let Some((n, f)) = fields.next()? {
        let (1, Field::Bytes(data)) = (n, f) else {
            continue;
        };
        let (mut plugin, mut content) = (String::new(), Vec::new());
        let mut parts = Fields { bytes: data };
        while let Some((n, f)) = parts.next()? {
            match (n, f) {
                (1, Field::Bytes(b)) => plugin = text(b)?,
                (2, Field::Bytes(b)) => content = b.to_vec(),
                _ => {}
            }
        }
        found = Some((plugin, content));
    }
    Ok(found)
}

fn decode_image(bytes: &[u8]) -> Result<Image, String> {
    let mut image = Image {
        height: 0,
        width: 0,
        colorspace: 0,
        png: Vec::new(),
    };
    let mut fields = Fields { bytes };
    while let Some((n, f)) = fields.next()? {
        match (n, f) {
            (1, Field::Varint(v)) => image.height = v as u32,
            (2, Field::Varint(v)) => image.width = v as u32,
            (3, Field::Varint(v)) => image.colorspace = v as u32,
            (4, Field::Bytes(b)) => image.png = b.to_vec(),
            _ => {}
        }
    }
    Ok(image)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_and_its_mask_match_tensorflows() {
        // CRC-32C("123456789") = 0xe3069283 (the standard check value).
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        // TensorFlow's crc32c::Mask(0) and of a known value.
        assert_eq!(0u32.rotate_right(15).wrapping_add(0xa282_ead8), 0xa282_ead8);
        assert_eq!(masked_crc(b""), 0xa282_ead8);
    }

    #[test]
    fn the_version_event_is_the_bytes_tensorflow_writes() {
        // tf.summary's first record for wall_time 1.0: fields 1 (double), 2
        // (step 0) and 3 ("brain.Event:2").
        let bytes = encode(&version_event(1.0));
        let mut want = vec![0x09, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 0x10, 0x00, 0x1a, 13];
        want.extend_from_slice(b"brain.Event:2");
        assert_eq!(bytes, want);
    }

    #[test]
    fn events_round_trip_through_records() {
        let events = vec![
            version_event(1_700_000_000.25),
            Event {
                wall_time: 1_700_000_001.5,
                step: 300,
                file_version: None,
                scalars: vec![("train/loss".into(), 0.625), ("dropped/block2".into(), 0.1)],
                images: vec![(
                    "mask/block2".into(),
                    Image {
                        height: 2,
                        width: 3,
                        colorspace: 1,
                        png: vec![0x89, b'P', b'N', b'G'],
                    },
                )],
                plugin_values: vec![PluginValue {
                    tag: "_hparams_/session_start_info".into(),
                    plugin: "hparams".into(),
                    content: vec![0x1a, 0x02, 0x22, 0x00],
                }],
            },
        ];
        let mut file = Vec::new();
        for e in &events {
            write_record(&mut file, &encode(e)).unwrap();
        }
        assert_eq!(read(&file).unwrap(), events);
        file[20] ^= 1;
        assert!(read(&file).unwrap_err().contains("CRC"));
    }
}
