//! The snapshot's Arrow IPC file (`data.arrow`): written one bounded batch at a time,
//! read back zero-copy from a read-only mapping.
//!
//! The file is the Arrow IPC *file* format, uncompressed, buffers 64-byte aligned (the
//! writer's default), so decoded arrays point straight into the mapping. Its footer's
//! custom metadata records `orderlog.lsn`, `orderlog.rows` and `orderlog.schema_version`,
//! which the reader cross-checks against the manifest.
//!
//! Decoding only ever runs on bytes whose size and CRC-32 matched the manifest, and it
//! still checks every offset and length it slices with before handing a block to
//! arrow's `FileDecoder` (which would panic on some out-of-range values), so a damaged or
//! foreign file is a typed error naming the file and offset.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::buffer::Buffer;
use arrow::datatypes::{Schema, SchemaRef};
use arrow::ipc::convert::try_fb_to_schema;
use arrow::ipc::reader::{FileDecoder, read_footer_length};
use arrow::ipc::writer::FileWriter;
use arrow::ipc::{Block, MessageHeader, root_as_footer, root_as_message};
use orderlog_wal::storage::ReadOnlyMap;

use crate::error::{Result, SnapshotError};
use crate::files::{CrcWriter, WritebackFile, WrittenFile, io_err};

/// The IPC file's name inside a snapshot directory.
pub(crate) const IPC_FILE: &str = "data.arrow";

/// Footer metadata keys.
pub(crate) const META_LSN: &str = "orderlog.lsn";
pub(crate) const META_ROWS: &str = "orderlog.rows";
pub(crate) const META_SCHEMA_VERSION: &str = "orderlog.schema_version";

/// `ARROW1` and two bytes of padding open the file; `ARROW1` closes it.
const LEADING_MAGIC: &[u8] = b"ARROW1\0\0";
/// Footer length (4 bytes) and `ARROW1` (6 bytes).
const TRAILER_BYTES: usize = 10;
/// Write buffer for the IPC file.
const WRITE_BUFFER_BYTES: usize = 64 << 10;

/// What the snapshot records about itself in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IpcMeta {
    pub(crate) lsn: u64,
    pub(crate) rows: u64,
    pub(crate) schema_version: u32,
}

/// The IPC file being written: batches go in one at a time.
pub(crate) struct IpcSink {
    writer: FileWriter<BufWriter<CrcWriter<WritebackFile>>>,
    path: PathBuf,
}

impl IpcSink {
    /// Creates `dir/data.arrow` (which must not exist) for batches of `schema`; see
    /// `SnapshotOptions::early_writeback` for `early_writeback`.
    pub(crate) fn create(dir: &Path, schema: &Schema, early_writeback: bool) -> Result<IpcSink> {
        let path = dir.join(IPC_FILE);
        let file = File::create_new(&path).map_err(io_err("create IPC file", &path))?;
        let file = WritebackFile::new(file, early_writeback);
        let sink = BufWriter::with_capacity(WRITE_BUFFER_BYTES, CrcWriter::new(file));
        Ok(IpcSink { writer: FileWriter::try_new(sink, schema)?, path })
    }

    pub(crate) fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        Ok(self.writer.write(batch)?)
    }

    /// Writes the footer (with `meta`) and flushes; the file still needs an fsync.
    pub(crate) fn finish(mut self, meta: IpcMeta) -> Result<WrittenFile> {
        let path = self.path;
        self.writer.write_metadata(META_LSN, meta.lsn.to_string());
        self.writer.write_metadata(META_ROWS, meta.rows.to_string());
        self.writer.write_metadata(META_SCHEMA_VERSION, meta.schema_version.to_string());
        let mut sink = self.writer.into_inner()?;
        sink.flush().map_err(io_err("write IPC file", &path))?;
        let crc_writer =
            sink.into_inner().map_err(|e| io_err("write IPC file", &path)(e.into_error()))?;
        let (file, bytes, crc32) = crc_writer.finish();
        let file = file.into_inner();
        Ok(WrittenFile { rel_path: IPC_FILE.into(), path, file, bytes, crc32 })
    }
}

/// An IPC file decoded from a mapping: the batches share the mapping (no copy).
#[derive(Debug)]
pub(crate) struct IpcContents {
    pub(crate) schema: SchemaRef,
    pub(crate) batches: Vec<RecordBatch>,
    pub(crate) metadata: HashMap<String, String>,
    /// Where the footer starts, for errors about what it says.
    pub(crate) footer_offset: u64,
}

/// Decodes a mapped IPC file. The caller has checked its size and CRC.
pub(crate) fn decode(path: &Path, map: ReadOnlyMap) -> Result<IpcContents> {
    let corrupt = |offset: usize, detail: String| SnapshotError::FileCorrupt {
        path: path.to_path_buf(),
        offset: offset as u64,
        detail,
    };
    let len = map.len();
    if len < LEADING_MAGIC.len() + TRAILER_BYTES {
        return Err(corrupt(len, "too short for an Arrow IPC file".into()));
    }
    if !map.starts_with(LEADING_MAGIC) {
        return Err(corrupt(0, "no ARROW1 magic at the start".into()));
    }
    let trailer_at = len - TRAILER_BYTES;
    let mut trailer = [0u8; TRAILER_BYTES];
    trailer.copy_from_slice(&map[trailer_at..]);
    let footer_len = read_footer_length(trailer).map_err(|e| corrupt(trailer_at, e.to_string()))?;
    let footer_at = trailer_at
        .checked_sub(footer_len)
        .filter(|&at| at >= LEADING_MAGIC.len())
        .ok_or_else(|| corrupt(trailer_at, format!("footer length {footer_len} too large")))?;

    // One Arrow buffer over the whole mapping: every decoded array slices it.
    let buffer = Buffer::from(bytes::Bytes::from_owner(map));
    let footer = root_as_footer(&buffer[footer_at..trailer_at])
        .map_err(|e| corrupt(footer_at, format!("footer: {e}")))?;
    let fb_schema = footer.schema().ok_or_else(|| corrupt(footer_at, "no schema".into()))?;
    if !fb_schema.endianness().equals_to_target_endianness() {
        return Err(corrupt(footer_at, "written with the other endianness".into()));
    }
    let schema = SchemaRef::new(
        try_fb_to_schema(fb_schema).map_err(|e| corrupt(footer_at, format!("schema: {e}")))?,
    );
    let mut metadata = HashMap::new();
    for kv in footer.custom_metadata().into_iter().flatten() {
        let (Some(k), Some(v)) = (kv.key(), kv.value()) else {
            return Err(corrupt(footer_at, "footer metadata entry without key or value".into()));
        };
        metadata.insert(k.to_string(), v.to_string());
    }

    let mut decoder = FileDecoder::new(schema.clone(), footer.version());
    for block in footer.dictionaries().into_iter().flatten() {
        let data = block_data(&buffer, block, footer_at).map_err(|(at, d)| corrupt(at, d))?;
        decoder.read_dictionary(block, &data).map_err(|e| {
            corrupt(usize::try_from(block.offset()).unwrap_or(0), format!("dictionary: {e}"))
        })?;
    }
    let blocks = footer.recordBatches().ok_or_else(|| corrupt(footer_at, "no blocks".into()))?;
    let mut batches = Vec::with_capacity(blocks.len());
    for block in blocks.iter() {
        let at = usize::try_from(block.offset()).unwrap_or(0);
        let data = block_data(&buffer, block, footer_at).map_err(|(at, d)| corrupt(at, d))?;
        let batch = decoder
            .read_record_batch(block, &data)
            .map_err(|e| corrupt(at, format!("record batch: {e}")))?
            .ok_or_else(|| corrupt(at, "block holds no record batch".into()))?;
        batches.push(batch);
    }
    Ok(IpcContents { schema, batches, metadata, footer_offset: footer_at as u64 })
}

/// The bytes of one block (message and body), after checking that the block and every
/// buffer its message describes lie inside the data region before the footer.
fn block_data(
    buffer: &Buffer,
    block: &Block,
    footer_at: usize,
) -> std::result::Result<Buffer, (usize, String)> {
    let (offset, meta_len, body_len) = (block.offset(), block.metaDataLength(), block.bodyLength());
    let bad = |detail: &str| {
        (
            usize::try_from(offset).unwrap_or(0).min(footer_at),
            format!("block at {offset} (+{meta_len} +{body_len}): {detail}"),
        )
    };
    let (Ok(start), Ok(meta), Ok(body)) =
        (usize::try_from(offset), usize::try_from(meta_len), usize::try_from(body_len))
    else {
        return Err(bad("negative offset or length"));
    };
    let end = start.checked_add(meta).and_then(|e| e.checked_add(body));
    if start < LEADING_MAGIC.len() || meta < 8 || end.is_none_or(|end| end > footer_at) {
        return Err(bad("outside the file's data region"));
    }
    check_message(&buffer[start..start + meta], body).map_err(|d| bad(&d))?;
    Ok(buffer.slice_with_length(start, meta + body))
}

/// Checks a message's metadata: it parses, and every buffer it names fits in the body.
fn check_message(meta: &[u8], body_len: usize) -> std::result::Result<(), String> {
    // A message opens with the continuation marker 0xFFFFFFFF and a length, or (old
    // format) just the length.
    let fb = if meta[..4] == [0xff; 4] { &meta[8..] } else { &meta[4..] };
    let message = root_as_message(fb).map_err(|e| format!("message: {e}"))?;
    if usize::try_from(message.bodyLength()).ok() != Some(body_len) {
        return Err(format!("message body length {} differs", message.bodyLength()));
    }
    let buffers = match message.header_type() {
        MessageHeader::RecordBatch => message.header_as_record_batch().and_then(|b| b.buffers()),
        MessageHeader::DictionaryBatch => {
            message.header_as_dictionary_batch().and_then(|d| d.data()).and_then(|b| b.buffers())
        }
        other => return Err(format!("unexpected message type {other:?}")),
    };
    for b in buffers.into_iter().flatten() {
        let fits = usize::try_from(b.offset())
            .ok()
            .zip(usize::try_from(b.length()).ok())
            .and_then(|(o, l)| o.checked_add(l))
            .is_some_and(|end| end <= body_len);
        if !fits {
            return Err(format!("buffer at {} (+{}) outside the body", b.offset(), b.length()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Array, UInt64Array};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn write_plain(path: &Path, batches: &[RecordBatch]) {
        let file = File::create(path).unwrap();
        let mut w = FileWriter::try_new(file, &batches[0].schema()).unwrap();
        for b in batches {
            w.write(b).unwrap();
        }
        w.finish().unwrap();
    }

    fn batch(values: Vec<u64>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::UInt64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(UInt64Array::from(values))]).unwrap()
    }

    #[test]
    fn decoded_arrays_point_into_the_mapping() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("z.arrow");
        let batches = [batch((0..1000).collect()), batch((1000..1500).collect())];
        write_plain(&path, &batches);
        let map = ReadOnlyMap::open_immutable(&path).unwrap();
        let range = map.as_ptr() as usize..map.as_ptr() as usize + map.len();
        let got = decode(&path, map).unwrap();
        assert_eq!(got.batches, batches);
        for b in &got.batches {
            let data = b.column(0).to_data();
            let values = data.buffers()[0].as_ptr() as usize;
            assert!(range.contains(&values), "values copied out of the mapping");
        }
    }

    #[test]
    fn every_byte_flip_is_an_error_or_decodes_without_panic() {
        // Without the CRC in front (which catches every flip first), the decoder itself
        // must still never panic on damage.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("z.arrow");
        write_plain(&path, &[batch(vec![1, 2, 3])]);
        let good = std::fs::read(&path).unwrap();
        let flipped = dir.path().join("f.arrow");
        for i in 0..good.len() {
            let mut bytes = good.clone();
            bytes[i] ^= 0x41;
            std::fs::write(&flipped, &bytes).unwrap();
            let map = ReadOnlyMap::open_immutable(&flipped).unwrap();
            let _ = decode(&flipped, map);
        }
        for len in 0..good.len() {
            std::fs::write(&flipped, &good[..len]).unwrap();
            let map = ReadOnlyMap::open_immutable(&flipped).unwrap();
            assert!(decode(&flipped, map).is_err(), "cut at {len}");
        }
    }
}
