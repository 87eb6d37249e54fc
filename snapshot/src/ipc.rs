//! The snapshot's Arrow IPC file (`data.arrow`): written one bounded batch at a time,
//! read back a block at a time (loading a state) or zero-copy from one buffer holding the
//! whole file (the batches themselves).
//!
//! The file is the Arrow IPC *file* format, uncompressed, buffers 64-byte aligned (the
//! writer's default), so decoded arrays point straight into the buffer. Its footer's
//! custom metadata records `orderlog.lsn`, `orderlog.rows` and `orderlog.schema_version`,
//! which the reader cross-checks against the manifest.
//!
//! Two readers: [`decode`] over a file read whole (its size and CRC-32 already checked
//! against the manifest), and [`decode_each`], which reads a block at a time and
//! computes the CRC on the way, for the caller to check before it trusts the result.
//! Either way every offset and length is checked before a block is handed to arrow's
//! `FileDecoder` (which would panic on some out-of-range values), so a damaged or
//! foreign file is a typed error naming the file and offset, never a panic.

use std::collections::HashMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::buffer::Buffer;
use arrow::datatypes::{DataType, Schema, SchemaRef, UnionMode};
use arrow::ipc::convert::try_fb_to_schema;
use arrow::ipc::reader::{FileDecoder, read_footer_length};
use arrow::ipc::writer::FileWriter;
use arrow::ipc::{Block, MessageHeader, MetadataVersion, root_as_footer, root_as_message};
use orderlog_storage::Storage;

use crate::error::{Result, SnapshotError};
use crate::files::{CrcWriter, WritebackFile, WrittenFile, io_err, join};

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
    /// Creates `dir/data.arrow` (which must not exist) on `storage` for batches of
    /// `schema`; see `SnapshotOptions::early_writeback` for `early_writeback`.
    pub(crate) fn create(
        storage: &dyn Storage,
        dir: &str,
        schema: &Schema,
        early_writeback: bool,
    ) -> Result<IpcSink> {
        let name = join(dir, IPC_FILE);
        let path = storage.path().join(&name);
        let file = storage.create_file(&name).map_err(io_err("create IPC file", &path))?;
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

/// An IPC file decoded from its buffer: the batches share the buffer (no copy).
#[derive(Debug)]
pub(crate) struct IpcContents {
    pub(crate) schema: SchemaRef,
    pub(crate) batches: Vec<RecordBatch>,
    pub(crate) metadata: HashMap<String, String>,
    /// Where the footer starts, for errors about what it says.
    pub(crate) footer_offset: u64,
}

/// What an IPC file decoded batch by batch says about itself.
#[derive(Debug)]
pub(crate) struct IpcSummary {
    pub(crate) schema: SchemaRef,
    pub(crate) metadata: HashMap<String, String>,
    /// Where the footer starts, for errors about what it says.
    pub(crate) footer_offset: u64,
    /// Rows in all its record batches.
    pub(crate) rows: u64,
}

/// Where an IPC file's bytes come from: all in memory, or read a range at a time.
trait Source {
    fn len(&self) -> usize;
    /// The bytes at `start..start + len` (which lie inside the file).
    fn range(&mut self, start: usize, len: usize) -> Result<Buffer>;
}

/// A file held whole: ranges are slices of it.
struct Whole(Buffer);

impl Source for Whole {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn range(&mut self, start: usize, len: usize) -> Result<Buffer> {
        Ok(self.0.slice_with_length(start, len))
    }
}

/// A file read a range at a time with `pread`, its CRC-32 computed on the way: memory
/// stays bounded by the largest block, and the file is read once. Ranges read in file
/// order (as the writer lays out its blocks) are hashed as they come; whatever was
/// skipped or read out of order is read again by [`Ranges::finish`].
pub(crate) struct Ranges<'a> {
    storage: &'a dyn Storage,
    name: &'a str,
    path: &'a Path,
    len: usize,
    hasher: crc32fast::Hasher,
    /// Bytes `0..hashed_to` are in `hasher`.
    hashed_to: usize,
}

impl<'a> Ranges<'a> {
    /// The file `name` of `storage`, `len` bytes long (`path` names it in errors).
    pub(crate) fn new(
        storage: &'a dyn Storage,
        name: &'a str,
        path: &'a Path,
        len: u64,
    ) -> Result<Ranges<'a>> {
        let len = usize::try_from(len).map_err(|_| SnapshotError::FileCorrupt {
            path: path.to_path_buf(),
            offset: 0,
            detail: format!("{len} bytes do not fit in memory"),
        })?;
        Ok(Ranges { storage, name, path, len, hasher: crc32fast::Hasher::new(), hashed_to: 0 })
    }

    fn read(&self, start: usize, bytes: &mut [u8]) -> Result<()> {
        self.storage
            .read_exact_at(self.name, start as u64, bytes)
            .map_err(io_err("read IPC file", self.path))
    }

    /// Reads and hashes the bytes from `hashed_to` up to `end`, a chunk at a time.
    fn hash_up_to(&mut self, end: usize) -> Result<()> {
        const CHUNK: usize = 1 << 20;
        let mut chunk = vec![0u8; CHUNK.min(end.saturating_sub(self.hashed_to))];
        while self.hashed_to < end {
            let n = (end - self.hashed_to).min(CHUNK);
            self.read(self.hashed_to, &mut chunk[..n])?;
            self.hasher.update(&chunk[..n]);
            self.hashed_to += n;
        }
        Ok(())
    }

    /// The CRC-32 of the whole file, reading what the decoder did not (or not in order).
    pub(crate) fn finish(mut self) -> Result<u32> {
        self.hash_up_to(self.len)?;
        Ok(self.hasher.finalize())
    }
}

impl Source for Ranges<'_> {
    fn len(&self) -> usize {
        self.len
    }
    fn range(&mut self, start: usize, len: usize) -> Result<Buffer> {
        let mut bytes = vec![0u8; len];
        self.read(start, &mut bytes)?;
        // Blocks follow each other after the schema message; a small gap (the schema, a
        // padding) is read again to keep the hash in order.
        if start >= self.hashed_to && start - self.hashed_to <= GAP_REREAD_BYTES {
            self.hash_up_to(start)?;
            self.hasher.update(&bytes);
            self.hashed_to = start + len;
        }
        Ok(Buffer::from_vec(bytes))
    }
}

/// The largest gap before a range that [`Ranges`] reads again to hash in order.
const GAP_REREAD_BYTES: usize = 1 << 20;

/// Decodes an IPC file read whole into `map`. The caller has checked its size and CRC.
pub(crate) fn decode(path: &Path, map: Buffer) -> Result<IpcContents> {
    let mut batches = Vec::new();
    let summary = decode_from(path, &mut Whole(map), &mut |batch| {
        batches.push(batch);
        Ok(())
    })?;
    Ok(IpcContents {
        schema: summary.schema,
        batches,
        metadata: summary.metadata,
        footer_offset: summary.footer_offset,
    })
}

/// Decodes an IPC file one record batch at a time from `source`, reading each block
/// when it is needed, and hands each batch to `visit`: memory stays bounded by one
/// block. The bytes are not yet verified: the caller checks `source.finish()` against
/// the manifest's CRC before it trusts what `visit` built (the decoder itself rejects
/// garbage with an error, never a panic).
pub(crate) fn decode_each(
    path: &Path,
    source: &mut Ranges<'_>,
    visit: &mut dyn FnMut(RecordBatch) -> Result<()>,
) -> Result<IpcSummary> {
    decode_from(path, source, visit)
}

fn decode_from(
    path: &Path,
    source: &mut dyn Source,
    visit: &mut dyn FnMut(RecordBatch) -> Result<()>,
) -> Result<IpcSummary> {
    let corrupt = |offset: usize, detail: String| SnapshotError::FileCorrupt {
        path: path.to_path_buf(),
        offset: offset as u64,
        detail,
    };
    let len = source.len();
    if len < LEADING_MAGIC.len() + TRAILER_BYTES {
        return Err(corrupt(len, "too short for an Arrow IPC file".into()));
    }
    if !source.range(0, LEADING_MAGIC.len())?.starts_with(LEADING_MAGIC) {
        return Err(corrupt(0, "no ARROW1 magic at the start".into()));
    }
    let trailer_at = len - TRAILER_BYTES;
    let mut trailer = [0u8; TRAILER_BYTES];
    trailer.copy_from_slice(&source.range(trailer_at, TRAILER_BYTES)?);
    let footer_len = read_footer_length(trailer).map_err(|e| corrupt(trailer_at, e.to_string()))?;
    let footer_at = trailer_at
        .checked_sub(footer_len)
        .filter(|&at| at >= LEADING_MAGIC.len())
        .ok_or_else(|| corrupt(trailer_at, format!("footer length {footer_len} too large")))?;

    let footer_bytes = source.range(footer_at, footer_len)?;
    let footer =
        root_as_footer(&footer_bytes).map_err(|e| corrupt(footer_at, format!("footer: {e}")))?;
    let fb_schema = footer.schema().ok_or_else(|| corrupt(footer_at, "no schema".into()))?;
    if !fb_schema.endianness().equals_to_target_endianness() {
        return Err(corrupt(footer_at, "written with the other endianness".into()));
    }
    let schema = SchemaRef::new(
        try_fb_to_schema(fb_schema).map_err(|e| corrupt(footer_at, format!("schema: {e}")))?,
    );
    for field in schema.fields() {
        check_type(field.data_type()).map_err(|d| corrupt(footer_at, format!("schema: {d}")))?;
    }
    let mut metadata = HashMap::new();
    for kv in footer.custom_metadata().into_iter().flatten() {
        let (Some(k), Some(v)) = (kv.key(), kv.value()) else {
            return Err(corrupt(footer_at, "footer metadata entry without key or value".into()));
        };
        metadata.insert(k.to_string(), v.to_string());
    }

    let mut decoder = FileDecoder::new(schema.clone(), footer.version());
    for block in footer.dictionaries().into_iter().flatten() {
        let data =
            block_data(source, block, footer_at, &schema)?.map_err(|(at, d)| corrupt(at, d))?;
        decoder.read_dictionary(block, &data).map_err(|e| {
            corrupt(usize::try_from(block.offset()).unwrap_or(0), format!("dictionary: {e}"))
        })?;
    }
    let blocks = footer.recordBatches().ok_or_else(|| corrupt(footer_at, "no blocks".into()))?;
    let mut rows = 0u64;
    for block in blocks.iter() {
        let at = usize::try_from(block.offset()).unwrap_or(0);
        let data =
            block_data(source, block, footer_at, &schema)?.map_err(|(at, d)| corrupt(at, d))?;
        let batch = decoder
            .read_record_batch(block, &data)
            .map_err(|e| corrupt(at, format!("record batch: {e}")))?
            .ok_or_else(|| corrupt(at, "block holds no record batch".into()))?;
        rows += batch.num_rows() as u64;
        visit(batch)?;
    }
    Ok(IpcSummary { schema, metadata, footer_offset: footer_at as u64, rows })
}

/// The bytes of one block (message and body), after checking that the block and every
/// buffer its message describes lie inside the data region before the footer, 8-byte
/// aligned, and sized as arrow's reader needs (see `check_message`).
/// The outer `Result` is an I/O error reading the block; the inner one, damage.
fn block_data(
    source: &mut dyn Source,
    block: &Block,
    footer_at: usize,
    schema: &Schema,
) -> Result<std::result::Result<Buffer, (usize, String)>> {
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
        return Ok(Err(bad("negative offset or length")));
    };
    let end = start.checked_add(meta).and_then(|e| e.checked_add(body));
    if start < LEADING_MAGIC.len() || meta < 8 || end.is_none_or(|end| end > footer_at) {
        return Ok(Err(bad("outside the file's data region")));
    }
    // The format aligns messages and bodies to 8 bytes (the writer to 64); a buffer the
    // allocator aligned less than a column needs is realigned by arrow's decoder.
    if start % 8 != 0 || meta % 8 != 0 {
        return Ok(Err(bad("message or body not 8-byte aligned")));
    }
    let data = source.range(start, meta + body)?;
    if let Err(d) = check_message(&data[..meta], body, schema) {
        return Ok(Err(bad(&d)));
    }
    Ok(Ok(data))
}

/// Checks a message's metadata: it parses, the body is uncompressed, and every buffer it
/// names is 8-byte aligned, fits in the body and is sized as arrow's reader assumes
/// without checking: a whole number of elements for offsets, sizes and fixed-width values
/// (arrow's validation panics on an offsets buffer that ends mid-offset), and a union's
/// type ids and offsets as long as its node says (arrow slices them unchecked).
fn check_message(meta: &[u8], body_len: usize, schema: &Schema) -> std::result::Result<(), String> {
    // A message opens with the continuation marker 0xFFFFFFFF and a length, or (old
    // format) just the length.
    let fb = if meta[..4] == [0xff; 4] { &meta[8..] } else { &meta[4..] };
    let message = root_as_message(fb).map_err(|e| format!("message: {e}"))?;
    if usize::try_from(message.bodyLength()).ok() != Some(body_len) {
        return Err(format!("message body length {} differs", message.bodyLength()));
    }
    let (batch, types) = match message.header_type() {
        MessageHeader::RecordBatch => (
            message.header_as_record_batch(),
            schema.fields().iter().map(|f| f.data_type().clone()).collect::<Vec<_>>(),
        ),
        MessageHeader::DictionaryBatch => {
            let dictionary = message.header_as_dictionary_batch();
            // Arrow looks the dictionary up by its id; one it does not know is its error.
            #[allow(deprecated)]
            let value_type = dictionary.and_then(|d| {
                schema.fields_with_dict_id(d.id()).first().and_then(|f| match f.data_type() {
                    DataType::Dictionary(_, value) => Some(value.as_ref().clone()),
                    _ => None,
                })
            });
            (dictionary.and_then(|d| d.data()), value_type.into_iter().collect())
        }
        other => return Err(format!("unexpected message type {other:?}")),
    };
    let Some(batch) = batch else {
        return Err("message without its header".into());
    };
    if batch.compression().is_some() {
        return Err("compressed body (this build reads uncompressed files)".into());
    }
    // Arrow reads the body by the message's own version, not the footer's.
    let version = message.version();
    let mut sizes = Vec::new();
    let mut node = 0;
    for data_type in &types {
        if !buffer_sizes(data_type, version, &mut node, &mut sizes) {
            break;
        }
    }
    let nodes = batch.nodes();
    for (i, b) in batch.buffers().into_iter().flatten().enumerate() {
        let (Ok(offset), Ok(len)) = (usize::try_from(b.offset()), usize::try_from(b.length()))
        else {
            return Err(format!("buffer {i}: negative offset or length"));
        };
        if offset.checked_add(len).is_none_or(|end| end > body_len) {
            return Err(format!("buffer {i} at {offset} (+{len}) outside the body"));
        }
        if offset % 8 != 0 {
            return Err(format!("buffer {i} at {offset} not 8-byte aligned"));
        }
        let Some(size) = sizes.get(i) else { continue };
        if len % size.width != 0 {
            return Err(format!("buffer {i} of {len} bytes: not whole {}-byte values", size.width));
        }
        if let Some((at, per_row)) = size.rows_of {
            let rows = nodes.filter(|n| at < n.len()).map(|n| n.get(at).length());
            let needed = rows
                .and_then(|r| usize::try_from(r).ok())
                .and_then(|r| r.checked_mul(per_row))
                .ok_or_else(|| format!("buffer {i}: node {at} missing or negative"))?;
            if len < needed {
                return Err(format!("buffer {i} of {len} bytes, node {at} needs {needed}"));
            }
        }
    }
    Ok(())
}

/// Refuses sizes arrow's reader takes on trust: a negative fixed size panics in its
/// layout of the type.
fn check_type(data_type: &DataType) -> std::result::Result<(), String> {
    match data_type {
        DataType::FixedSizeBinary(size) if *size < 0 => {
            Err(format!("fixed-size binary of {size} bytes"))
        }
        DataType::FixedSizeList(_, size) if *size < 0 => {
            Err(format!("fixed-size list of {size} values"))
        }
        DataType::List(child)
        | DataType::LargeList(child)
        | DataType::ListView(child)
        | DataType::LargeListView(child)
        | DataType::FixedSizeList(child, _)
        | DataType::Map(child, _) => check_type(child.data_type()),
        DataType::Struct(children) => children.iter().try_for_each(|c| check_type(c.data_type())),
        DataType::Union(children, _) => {
            children.iter().try_for_each(|(_, c)| check_type(c.data_type()))
        }
        DataType::RunEndEncoded(run_ends, values) => {
            check_type(run_ends.data_type())?;
            check_type(values.data_type())
        }
        DataType::Dictionary(key, value) => {
            check_type(key)?;
            check_type(value)
        }
        _ => Ok(()),
    }
}

/// What arrow's reader assumes of one buffer: a whole number of `width`-byte values and,
/// for `rows_of: Some((node, bytes))`, at least `bytes` per row of that field node.
#[derive(Debug, Clone, Copy)]
struct BufferSize {
    width: usize,
    rows_of: Option<(usize, usize)>,
}

/// Appends what arrow's reader (`arrow_ipc::reader`, `create_array`) assumes of each
/// buffer of a column of `data_type`, in the order it takes them, and counts the field
/// nodes it takes (one per column and child). Returns false for a type whose buffers
/// cannot be counted from the schema (views); the checks stop there.
fn buffer_sizes(
    data_type: &DataType,
    version: MetadataVersion,
    node: &mut usize,
    out: &mut Vec<BufferSize>,
) -> bool {
    let this_node = *node;
    *node += 1;
    let mut push = |width: usize| out.push(BufferSize { width, rows_of: None });
    match data_type {
        DataType::Null => {}
        DataType::Boolean | DataType::FixedSizeBinary(_) => (1..=2).for_each(|_| push(1)),
        DataType::Utf8 | DataType::Binary => [1, 4, 1].into_iter().for_each(push),
        DataType::LargeUtf8 | DataType::LargeBinary => [1, 8, 1].into_iter().for_each(push),
        DataType::Utf8View | DataType::BinaryView => return false,
        DataType::List(child) | DataType::Map(child, _) => {
            [1, 4].into_iter().for_each(push);
            return buffer_sizes(child.data_type(), version, node, out);
        }
        DataType::LargeList(child) => {
            [1, 8].into_iter().for_each(push);
            return buffer_sizes(child.data_type(), version, node, out);
        }
        DataType::ListView(child) => {
            [1, 4, 4].into_iter().for_each(push);
            return buffer_sizes(child.data_type(), version, node, out);
        }
        DataType::LargeListView(child) => {
            [1, 8, 8].into_iter().for_each(push);
            return buffer_sizes(child.data_type(), version, node, out);
        }
        DataType::FixedSizeList(child, _) => {
            push(1);
            return buffer_sizes(child.data_type(), version, node, out);
        }
        DataType::Struct(children) => {
            push(1);
            return children.iter().all(|c| buffer_sizes(c.data_type(), version, node, out));
        }
        DataType::RunEndEncoded(run_ends, values) => {
            return buffer_sizes(run_ends.data_type(), version, node, out)
                && buffer_sizes(values.data_type(), version, node, out);
        }
        DataType::Dictionary(key, _) => match key.primitive_width() {
            Some(width) => [1, width].into_iter().for_each(push),
            None => return false,
        },
        DataType::Union(children, mode) => {
            if version < MetadataVersion::V5 {
                push(1);
            }
            out.push(BufferSize { width: 1, rows_of: Some((this_node, 1)) });
            if *mode == UnionMode::Dense {
                out.push(BufferSize { width: 4, rows_of: Some((this_node, 4)) });
            }
            return children.iter().all(|(_, c)| buffer_sizes(c.data_type(), version, node, out));
        }
        other => match other.primitive_width() {
            Some(width) => [1, width].into_iter().for_each(push),
            None => return false,
        },
    }
    true
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Array, UInt64Array};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn write_plain(path: &Path, batches: &[RecordBatch]) {
        let file = std::fs::File::create(path).unwrap();
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
    fn decoded_arrays_point_into_the_file_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("z.arrow");
        let batches = [batch((0..1000).collect()), batch((1000..1500).collect())];
        write_plain(&path, &batches);
        let map = Buffer::from(std::fs::read(&path).unwrap());
        let range = map.as_ptr() as usize..map.as_ptr() as usize + map.len();
        let got = decode(&path, map).unwrap();
        assert_eq!(got.batches, batches);
        for b in &got.batches {
            let data = b.column(0).to_data();
            let values = data.buffers()[0].as_ptr() as usize;
            assert!(range.contains(&values), "values copied out of the file's buffer");
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
            let _ = decode(&flipped, Buffer::from(bytes));
        }
        for len in 0..good.len() {
            assert!(decode(&flipped, Buffer::from(good[..len].to_vec())).is_err(), "cut at {len}");
        }
    }
}
