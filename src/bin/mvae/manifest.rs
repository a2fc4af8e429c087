//! Manifests: the user's own data as one table, a CSV file with a header or a JSON Lines file
//! of objects, one row per sample and one column per modality: numbers, class words, or paths
//! to images and WAV files (relative to the manifest's folder). An empty cell is a missing
//! modality. `train` infers each column's kind (or takes it from the config's `[modalities]`),
//! builds the codecs and fits their normalisers on the training rows; `impute`, `embed` and
//! `eval` read a manifest with a trained model's codecs; `impute` writes a completed copy in
//! which every cell it did not fill is the input's, byte for byte.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use mvae::data::image_folder::is_image;
use mvae::data::{cell_value, DatasetBuilder, Normalizer, SpectrogramConfig};
use mvae::{Codec, Codecs, MultimodalDataset};
use serde::{Deserialize, Serialize};

/// What a modality of a manifest holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Paths to PNG or JPEG images.
    Image,
    /// Paths to WAV files, read as standardised log spectrograms.
    Audio,
    /// Class words (or numbers read as class names).
    Label,
    /// Numbers, one column or a group of columns.
    Continuous,
}

/// One `[modalities.NAME]` entry of the config: how the column `NAME` (or the group of
/// `columns`) is read, where inference should not decide.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModalityDecl {
    /// The kind; inferred from the cells when absent.
    pub kind: Option<Kind>,
    /// Numeric columns read together as one continuous modality named `NAME`.
    pub columns: Vec<String>,
    /// Image width in pixels (images are resized); default from the first image.
    pub width: Option<usize>,
    /// Image height in pixels.
    pub height: Option<usize>,
    /// 1 (grey) or 3 (RGB); default from the first image's colour type.
    pub channels: Option<usize>,
    /// Audio: the rate clips are resampled to, in Hz (default 8000).
    pub sample_rate: Option<u32>,
    /// Audio: spectrogram frames kept (default 32, about half a second at 8 kHz).
    pub frames: Option<usize>,
    /// Audio: frequency bins kept (default 64).
    pub bins: Option<usize>,
}

/// The largest side of an image whose size is inferred: larger images are scaled down to it,
/// keeping their aspect ratio (declare `width` and `height` for more).
pub const INFERRED_IMAGE_SIDE: usize = 64;

/// The most classes a label column may have.
pub const MAX_CLASSES: usize = 1000;

/// The name of the optional column that assigns rows to the splits (`train` or `test`).
pub const SPLIT: &str = "split";

/// The rows of a manifest as written, for writing a completed copy.
enum Raw {
    Csv {
        header: csv::ByteRecord,
        rows: Vec<csv::ByteRecord>,
        crlf: bool,
    },
    Jsonl {
        /// Every line of the file as written (blank ones too), without its end.
        text: Vec<String>,
        /// The row each line holds, if any.
        row_of_line: Vec<Option<usize>>,
        rows: Vec<Object>,
        crlf: bool,
        /// Whether the file ends with a line end.
        final_newline: bool,
    },
}

/// A manifest read into memory: names, trimmed cells, the line each row starts on.
pub struct Manifest {
    path: PathBuf,
    /// Column names (CSV header cells, or JSON keys in order of first appearance), trimmed.
    pub header: Vec<String>,
    /// Each row's cells; `None` where empty (or JSON `null`, or a key the row lacks).
    cells: Vec<Vec<Option<String>>>,
    /// The 1-based line each row starts on.
    lines: Vec<u64>,
    raw: Raw,
}

impl Manifest {
    /// Reads `path`: JSON Lines when its extension is `.jsonl` or `.ndjson`, else CSV.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let crlf = bytes
            .iter()
            .position(|&b| b == b'\n')
            .is_some_and(|i| i > 0 && bytes[i - 1] == b'\r');
        let jsonl = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("jsonl") || e.eq_ignore_ascii_case("ndjson"));
        if jsonl {
            read_jsonl(path, &bytes, crlf)
        } else {
            read_csv(path, &bytes, crlf)
        }
    }

    /// Rows.
    pub fn len(&self) -> usize {
        self.cells.len()
    }

    /// The cell of row `r` in column `c`, trimmed; `None` when empty.
    pub fn cell(&self, r: usize, c: usize) -> Option<&str> {
        self.cells[r][c].as_deref()
    }

    /// Where a cell is, for messages: `FILE: line L: column C (NAME)` (`key "NAME"` in JSON
    /// Lines).
    pub fn place(&self, r: usize, c: usize) -> String {
        match self.raw {
            Raw::Csv { .. } => format!(
                "{}: line {}: column {} ({})",
                self.path.display(),
                self.lines[r],
                c + 1,
                self.header[c]
            ),
            Raw::Jsonl { .. } => format!(
                "{}: line {}: key {:?}",
                self.path.display(),
                self.lines[r],
                self.header[c]
            ),
        }
    }

    /// The column of modality `name`: the column of that exact name, else the one whose
    /// name written as a modality name ([`modality_name`]) is `name`.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.header
            .iter()
            .position(|h| h == name)
            .or_else(|| self.header.iter().position(|h| modality_name(h) == name))
    }

    /// A file named in a cell: relative paths resolve against the manifest's folder.
    pub fn resolve(&self, cell: &str) -> PathBuf {
        let p = Path::new(cell);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.path.parent().unwrap_or(Path::new(".")).join(p)
        }
    }

    /// The training and test rows: from the `split` column when there is one (every row
    /// `train` or `test`, in any letter case), else a seeded share `test_fraction` of the rows
    /// as [`MultimodalDataset::split`] draws it.
    pub fn split(&self, test_fraction: f64, seed: u64) -> Result<(Vec<usize>, Vec<usize>)> {
        let Some(c) = self.split_column() else {
            let (test, train) = mvae::data::dataset::split_rows(self.len(), test_fraction, seed)?;
            return Ok((train, test));
        };
        let (mut train, mut test) = (Vec::new(), Vec::new());
        for r in 0..self.len() {
            match self.cell(r, c).map(str::to_ascii_lowercase).as_deref() {
                Some("train") => train.push(r),
                Some("test") => test.push(r),
                Some(other) => bail!("{}: {other:?} is not train or test", self.place(r, c)),
                None => bail!("{}: empty; every row needs train or test", self.place(r, c)),
            }
        }
        Ok((train, test))
    }

    fn split_column(&self) -> Option<usize> {
        self.header
            .iter()
            .position(|h| h.eq_ignore_ascii_case(SPLIT))
    }
}

fn read_csv(path: &Path, bytes: &[u8], crlf: bool) -> Result<Manifest> {
    let file = path.display();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let line_of = |e: &csv::Error| e.position().map_or(0, |p| p.line());
    let mut records = reader.byte_records();
    let header = match records.next() {
        None => bail!("{file}: line 1: file is empty, expected a header row"),
        Some(r) => {
            r.map_err(|e| anyhow::anyhow!("{file}: line {}: cannot read header: {e}", line_of(&e)))?
        }
    };
    let names: Vec<String> = header
        .iter()
        .map(|h| String::from_utf8_lossy(h).trim().to_string())
        .collect();
    let mut rows = Vec::new();
    let mut cells = Vec::new();
    let mut lines = Vec::new();
    for record in records {
        let record = record
            .map_err(|e| anyhow::anyhow!("{file}: line {}: cannot read row: {e}", line_of(&e)))?;
        let line = record.position().map_or(0, |p| p.line());
        if record.len() != names.len() {
            bail!(
                "{file}: line {line}: row has {} cells but the header has {}",
                record.len(),
                names.len()
            );
        }
        cells.push(
            record
                .iter()
                .map(|c| {
                    let text = String::from_utf8_lossy(c);
                    let t = text.trim();
                    (!t.is_empty()).then(|| t.to_string())
                })
                .collect(),
        );
        lines.push(line);
        rows.push(record);
    }
    Ok(Manifest {
        path: path.to_path_buf(),
        header: names,
        cells,
        lines,
        raw: Raw::Csv { header, rows, crlf },
    })
}

fn read_jsonl(path: &Path, bytes: &[u8], crlf: bool) -> Result<Manifest> {
    let file = path.display();
    let text = std::str::from_utf8(bytes).with_context(|| format!("{file}: not UTF-8 text"))?;
    let mut rows = Vec::new();
    let mut lines = Vec::new();
    let mut header: Vec<String> = Vec::new();
    let all: Vec<String> = text.lines().map(str::to_string).collect();
    let mut row_of_line = vec![None; all.len()];
    for (i, line) in all.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        row_of_line[i] = Some(rows.len());
        let n = i as u64 + 1;
        let object: Object = serde_json::from_str(line)
            .map_err(|e| anyhow::anyhow!("{file}: line {n}: not a JSON object: {e}"))?;
        for (k, v) in &object.0 {
            if v.is_array() || v.is_object() {
                bail!("{file}: line {n}: key {k:?}: a cell is a string, a number, true, false or null");
            }
            if !header.contains(k) {
                header.push(k.clone());
            }
        }
        rows.push(object);
        lines.push(n);
    }
    if rows.is_empty() {
        bail!("{file}: holds no JSON objects");
    }
    let cells = rows
        .iter()
        .map(|o| {
            header
                .iter()
                .map(|k| match o.get(k) {
                    None | Some(serde_json::Value::Null) => None,
                    Some(serde_json::Value::String(s)) => {
                        let t = s.trim();
                        (!t.is_empty()).then(|| t.to_string())
                    }
                    Some(v) => Some(v.to_string()),
                })
                .collect()
        })
        .collect();
    Ok(Manifest {
        path: path.to_path_buf(),
        header: header.iter().map(|h| h.trim().to_string()).collect(),
        cells,
        lines,
        raw: Raw::Jsonl {
            text: all,
            row_of_line,
            rows,
            crlf,
            final_newline: text.ends_with('\n'),
        },
    })
}

/// A column name as a modality name: ASCII letters, digits and `_`.
pub fn modality_name(col: &str) -> String {
    col.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// The modalities of a manifest and how each was decided, one line each for the user.
pub struct Layout {
    /// A codec per modality; the normalisers are placeholders until [`Manifest::load`] fits
    /// them on the training rows.
    pub codecs: Codecs,
    /// What each column became and why (`label: 2 classes (benign, malignant), words`).
    pub notes: Vec<String>,
}

/// Decides the modalities of `m`: the `[modalities]` entries and `groups` first, then each
/// remaining column by its cells (paths ending `.png`, `.jpg` or `.jpeg`: image; `.wav`:
/// audio; numbers: continuous; other words: class label). A column of words that are all
/// distinct is an identifier and is skipped; so is the `split` column.
pub fn infer(
    m: &Manifest,
    decls: &BTreeMap<String, ModalityDecl>,
    groups: &BTreeMap<String, Vec<String>>,
) -> Result<Layout> {
    for (j, h) in m.header.iter().enumerate() {
        if let Some(i) = m.header[..j].iter().position(|o| o == h) {
            bail!(
                "the header names column {h:?} twice (columns {} and {})",
                i + 1,
                j + 1
            );
        }
    }
    let mut used = vec![false; m.header.len()];
    if let Some(c) = m.split_column() {
        used[c] = true;
    }
    let mut codecs = Codecs::new();
    let mut notes = Vec::new();
    // What made each modality name: `group "x"` or `column "x"`.
    let mut origin: BTreeMap<String, String> = BTreeMap::new();
    let mut claim = |name: &str, what: String| -> Result<()> {
        if let Some(first) = origin.get(name) {
            let both = match (first.strip_prefix("column "), what.strip_prefix("column ")) {
                (Some(a), Some(b)) => format!("columns {a} and {b}"),
                _ => format!("{first} and {what}"),
            };
            bail!("{both} would both be modality {name:?}; rename one");
        }
        origin.insert(name.to_string(), what);
        Ok(())
    };
    let index = |col: &str| {
        m.header
            .iter()
            .position(|h| h == col)
            .with_context(|| format!("group column {col:?} is not in the header"))
    };
    let mut all_groups: Vec<(String, Vec<String>)> =
        groups.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    for (name, d) in decls {
        if !d.columns.is_empty() {
            if d.kind.is_some_and(|k| k != Kind::Continuous) {
                bail!(
                    "[modalities.{name}]: columns = [...] groups numbers; its kind is continuous"
                );
            }
            all_groups.push((name.clone(), d.columns.clone()));
        }
    }
    for (name, cols) in &all_groups {
        let idx = cols.iter().map(|c| index(c)).collect::<Result<Vec<_>>>()?;
        let modality = modality_name(name);
        claim(&modality, format!("group {name:?}"))?;
        for &c in &idx {
            if used[c] {
                bail!("column {:?} is in two groups", m.header[c]);
            }
            used[c] = true;
            numbers(m, c)?;
        }
        notes.push(format!(
            "{modality}: continuous, columns {}",
            cols.join(", ")
        ));
        codecs.insert(modality, columns_codec(cols.clone()));
    }
    for (name, d) in decls.iter().filter(|(_, d)| d.columns.is_empty()) {
        let c = m.column(name).with_context(|| {
            format!(
                "[modalities.{name}] names no column of the manifest (it has {})",
                m.header.join(", ")
            )
        })?;
        if used[c] {
            bail!(
                "[modalities.{name}]: column {:?} is already read",
                m.header[c]
            );
        }
        used[c] = true;
        let modality = modality_name(&m.header[c]);
        claim(&modality, format!("column {:?}", m.header[c]))?;
        let kind = match d.kind {
            // Inference checks a column of numbers as it reads it; a declared one here.
            Some(Kind::Continuous) => {
                numbers(m, c)?;
                Kind::Continuous
            }
            Some(k) => k,
            None => sniff(m, c)?.with_context(|| {
                format!("column {:?} has no values to infer its kind", m.header[c])
            })?,
        };
        let (codec, note) = codec_for(m, c, kind, d)?;
        notes.push(format!("{modality}: {note} (declared)"));
        codecs.insert(modality, codec);
    }
    for (c, h) in m.header.iter().enumerate() {
        if used[c] {
            continue;
        }
        let Some(kind) = sniff(m, c)? else {
            bail!("column {h:?} has no values");
        };
        if kind == Kind::Label && is_identifier(m, c) {
            notes.push(format!(
                "{h}: skipped: every value is distinct (an identifier)"
            ));
            continue;
        }
        let modality = modality_name(h);
        claim(&modality, format!("column {h:?}"))?;
        let (codec, note) = codec_for(m, c, kind, &ModalityDecl::default())?;
        notes.push(format!("{modality}: {note}"));
        codecs.insert(modality, codec);
    }
    if let Some(c) = m.split_column() {
        notes.push(format!("{}: the train/test split", m.header[c]));
    }
    if codecs.is_empty() {
        bail!("the manifest has no column to learn from");
    }
    Ok(Layout { codecs, notes })
}

/// The kind a column's cells show, or `None` when it has none.
fn sniff(m: &Manifest, c: usize) -> Result<Option<Kind>> {
    let present: Vec<usize> = (0..m.len()).filter(|&r| m.cell(r, c).is_some()).collect();
    let Some(&first) = present.first() else {
        return Ok(None);
    };
    let text = |r: usize| m.cell(r, c).expect("present");
    let is_wav = |s: &str| {
        Path::new(s)
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("wav"))
    };
    let is_number = |s: &str| cell_value(s).is_ok();
    let (kind, fits, what): (Kind, fn(&str) -> bool, &str) = if is_image(Path::new(text(first))) {
        (
            Kind::Image,
            |s: &str| is_image(Path::new(s)),
            "an image path (.png, .jpg, .jpeg)",
        )
    } else if is_wav(text(first)) {
        (Kind::Audio, is_wav, "a path to a .wav file")
    } else if is_number(text(first)) {
        // A column of numbers: every cell must be one (a typo is named, not read as a class).
        for &r in &present {
            if let Err(reason) = cell_value(text(r)) {
                bail!(
                    "{}: {reason}, but the column's other cells are numbers (declare \
                     [modalities.{}] kind = \"label\" to read it as classes)",
                    m.place(r, c),
                    modality_name(&m.header[c])
                );
            }
        }
        return Ok(Some(Kind::Continuous));
    } else {
        return Ok(Some(Kind::Label));
    };
    if let Some(&r) = present.iter().find(|&&r| !fits(text(r))) {
        bail!(
            "{}: {:?} is not {what}, as the column's first cell is",
            m.place(r, c),
            text(r)
        );
    }
    Ok(Some(kind))
}

/// Whether every present cell of column `c` differs from the others (more than 20 rows).
fn is_identifier(m: &Manifest, c: usize) -> bool {
    let values: Vec<&str> = (0..m.len()).filter_map(|r| m.cell(r, c)).collect();
    let distinct: BTreeSet<&str> = values.iter().copied().collect();
    values.len() > 20 && distinct.len() == values.len()
}

/// Checks that every present cell of column `c` is a number.
fn numbers(m: &Manifest, c: usize) -> Result<()> {
    for r in 0..m.len() {
        if let Some(t) = m.cell(r, c) {
            cell_value(t).map_err(|reason| anyhow::anyhow!("{}: {reason}", m.place(r, c)))?;
        }
    }
    Ok(())
}

fn columns_codec(columns: Vec<String>) -> Codec {
    let normalizer = Normalizer::identity(columns.len());
    Codec::Columns {
        columns,
        normalizer,
    }
}

/// The codec of column `c` read as `kind` (a continuous column's cells already checked to be
/// numbers), with a note saying what was found.
fn codec_for(m: &Manifest, c: usize, kind: Kind, d: &ModalityDecl) -> Result<(Codec, String)> {
    let h = &m.header[c];
    Ok(match kind {
        Kind::Continuous => (columns_codec(vec![h.clone()]), "continuous".into()),
        Kind::Label => {
            let mut words: Vec<String> = (0..m.len())
                .filter_map(|r| m.cell(r, c).map(str::to_string))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            // Numbers read as classes are ordered as numbers (2 before 10).
            if words.iter().all(|w| w.parse::<f64>().is_ok()) {
                words.sort_by(|a, b| {
                    let (x, y): (f64, f64) = (a.parse().unwrap_or(0.0), b.parse().unwrap_or(0.0));
                    x.total_cmp(&y)
                });
            }
            if words.len() > MAX_CLASSES {
                bail!(
                    "column {h:?} has {} distinct words; a class label has at most {MAX_CLASSES}",
                    words.len()
                );
            }
            let shown: Vec<&str> = words.iter().take(8).map(String::as_str).collect();
            let more = if words.len() > 8 { ", ..." } else { "" };
            let note = format!(
                "label, {} classes ({}{more})",
                words.len(),
                shown.join(", ")
            );
            (Codec::named_label(words), note)
        }
        Kind::Image => {
            let first = (0..m.len())
                .find_map(|r| m.cell(r, c).map(|t| (r, t)))
                .with_context(|| format!("column {h:?} has no images"))?;
            let path = m.resolve(first.1);
            let img = image::open(&path)
                .map_err(|e| anyhow::anyhow!("{}: {}: {e}", m.place(first.0, c), path.display()))?;
            let (w, hgt) = (img.width() as usize, img.height() as usize);
            let (width, height) = match (d.width, d.height) {
                (Some(a), Some(b)) => (a, b),
                (None, None) => fit_side(w, hgt),
                _ => bail!("[modalities.{h}]: give both width and height, or neither"),
            };
            if width == 0 || height == 0 || width * height > mvae::data::image_folder::MAX_PIXELS {
                bail!("column {h:?}: images of {width} x {height} pixels cannot be read");
            }
            let channels = d
                .channels
                .unwrap_or(if img.color().has_color() { 3 } else { 1 });
            if !matches!(channels, 1 | 3) {
                bail!("[modalities.{h}]: channels {channels} is not 1 (grey) or 3 (RGB)");
            }
            let colour = if channels == 3 { "RGB" } else { "grey" };
            let note = format!(
                "image, {width} x {height} {colour} (the first image, {}, is {w} x {hgt})",
                first.1
            );
            (
                Codec::Image {
                    width,
                    height,
                    channels,
                },
                note,
            )
        }
        Kind::Audio => {
            let base = SpectrogramConfig::default();
            let spectrogram = SpectrogramConfig {
                sample_rate: d.sample_rate.unwrap_or(base.sample_rate),
                frames: d.frames.unwrap_or(base.frames),
                bins: d.bins.unwrap_or(base.bins),
                ..base
            };
            mvae::data::Stft::new(&spectrogram)
                .with_context(|| format!("[modalities.{h}]: spectrogram settings"))?;
            let note = format!(
                "audio, {} frames x {} bins at {} Hz (WAV files at other rates are resampled)",
                spectrogram.frames, spectrogram.bins, spectrogram.sample_rate
            );
            let normalizer = Normalizer::identity(spectrogram.bins);
            (
                Codec::Audio {
                    spectrogram,
                    normalizer,
                },
                note,
            )
        }
    })
}

/// An image's size kept when both sides are at most [`INFERRED_IMAGE_SIDE`], else scaled so
/// that the longer side is, keeping the aspect ratio.
fn fit_side(w: usize, h: usize) -> (usize, usize) {
    let long = w.max(h).max(1);
    if long <= INFERRED_IMAGE_SIDE {
        return (w.max(1), h.max(1));
    }
    let scale = |s: usize| ((s * INFERRED_IMAGE_SIDE + long / 2) / long).max(1);
    (scale(w), scale(h))
}

impl Manifest {
    /// Reads the modalities of `codecs` from every row into a data set (rows in the
    /// manifest's order). With `fit`, the codecs' normalisers (numeric columns, audio) are
    /// first fitted on those rows (training); without, they are used as they are (a trained
    /// model's). Every bad cell is an error naming the file, the line and the column; so is a
    /// row in which no modality is present.
    pub fn load(&self, codecs: &mut Codecs, fit: Option<&[usize]>) -> Result<MultimodalDataset> {
        let rows = self.len();
        let mut b = DatasetBuilder::new();
        let mut any = vec![false; rows];
        for (name, codec) in codecs.iter_mut() {
            let (dim, mut values, present) = match codec {
                Codec::Columns {
                    columns,
                    normalizer,
                } => self.read_columns(columns, normalizer, fit)?,
                Codec::Label { .. } => {
                    let c = self.needed(name)?;
                    let mut values = Vec::with_capacity(rows);
                    let mut present = Vec::with_capacity(rows);
                    for r in 0..rows {
                        let v = match self.cell(r, c) {
                            Some(t) => Some(
                                codec
                                    .parse_label(t)
                                    .map_err(|e| anyhow::anyhow!("{}: {e}", self.place(r, c)))?,
                            ),
                            None => None,
                        };
                        values.push(v.unwrap_or(0.0));
                        present.push(v.is_some());
                    }
                    (1, values, present)
                }
                Codec::Image { .. } | Codec::Audio { .. } => self.read_files(name, codec, fit)?,
            };
            for (a, &p) in any.iter_mut().zip(&present) {
                *a |= p;
            }
            for (v, &p) in values.chunks_mut(dim).zip(&present) {
                if !p {
                    v.fill(0.0);
                }
            }
            b = b.column_with_mask(name, dim, std::mem::take(&mut values), present);
        }
        if let Some(r) = any.iter().position(|&a| !a) {
            let reason = if self.cells[r].iter().all(Option::is_none) {
                "every cell is empty"
            } else {
                "no modality of the model has all its cells"
            };
            bail!(
                "{}: line {}: {reason}, so the row has nothing to encode",
                self.path.display(),
                self.lines[r]
            );
        }
        Ok(b.build()?)
    }

    /// The column of modality `name`, or an error saying the model needs it.
    fn needed(&self, name: &str) -> Result<usize> {
        self.column(name).with_context(|| {
            format!(
                "{}: has no column {name:?}, which the model needs",
                self.path.display()
            )
        })
    }

    /// Numeric columns read as one modality, standardised; present where all cells are.
    fn read_columns(
        &self,
        columns: &[String],
        normalizer: &mut Normalizer,
        fit: Option<&[usize]>,
    ) -> Result<(usize, Vec<f32>, Vec<bool>)> {
        let idx: Vec<usize> = columns
            .iter()
            .map(|c| self.needed(c))
            .collect::<Result<_>>()?;
        let k = idx.len();
        let mut values = Vec::with_capacity(self.len() * k);
        let mut present = Vec::with_capacity(self.len());
        let mut cell_present = Vec::with_capacity(self.len() * k);
        for r in 0..self.len() {
            for &c in &idx {
                let v = match self.cell(r, c) {
                    Some(t) => cell_value(t)
                        .map_err(|reason| anyhow::anyhow!("{}: {reason}", self.place(r, c)))?,
                    None => None,
                };
                values.push(v.unwrap_or(0.0));
                cell_present.push(v.is_some());
            }
            present.push(cell_present[r * k..].iter().all(|&p| p));
        }
        if let Some(rows) = fit {
            let (mut mean, mut std) = (Vec::new(), Vec::new());
            for (j, &c) in idx.iter().enumerate() {
                let vals: Vec<f32> = rows
                    .iter()
                    .filter(|&&r| cell_present[r * k + j])
                    .map(|&r| values[r * k + j])
                    .collect();
                if vals.is_empty() {
                    bail!("column {:?} has no values", self.header[c]);
                }
                let fitted = Normalizer::fit(&vals, 1)?;
                mean.push(fitted.mean[0]);
                std.push(fitted.std[0]);
            }
            *normalizer = Normalizer { mean, std };
        }
        for (r, row) in values.chunks(k).enumerate() {
            if let Some((j, z)) = normalizer.outlier(row).filter(|_| present[r]) {
                bail!(
                    "{}: line {}: column {}: {}",
                    self.path.display(),
                    self.lines[r],
                    columns[j],
                    outlier_reason(row[j], z)
                );
            }
        }
        normalizer.apply(&mut values)?;
        Ok((k, values, present))
    }

    /// Image or audio files named in the column of modality `name`, read through `codec`;
    /// with `fit`, an audio codec's normaliser is fitted on those rows' spectrograms first.
    fn read_files(
        &self,
        name: &str,
        codec: &mut Codec,
        fit: Option<&[usize]>,
    ) -> Result<(usize, Vec<f32>, Vec<bool>)> {
        let c = self.needed(name)?;
        let dim = codec.dim();
        // Audio being fitted is read raw (an identity normaliser), then standardised.
        let fitting_audio = match (&mut *codec, fit) {
            (Codec::Audio { normalizer, .. }, Some(_)) => {
                *normalizer = Normalizer::identity(normalizer.width());
                true
            }
            _ => false,
        };
        let present_rows = (0..self.len())
            .filter(|&r| self.cell(r, c).is_some())
            .count();
        let bar = crate::output::progress(present_rows as u64, format!("reading {name}"));
        let mut values = Vec::with_capacity(self.len() * dim);
        let mut present = Vec::with_capacity(self.len());
        for r in 0..self.len() {
            match self.cell(r, c) {
                Some(t) => {
                    if !codec.reads_file(Path::new(t)) {
                        bail!(
                            "{}: {t:?} is not a file this modality reads ({})",
                            self.place(r, c),
                            codec.extension().unwrap_or("?")
                        );
                    }
                    let v = codec
                        .read_file(&self.resolve(t))
                        .map_err(|e| anyhow::anyhow!("{}: {e}", self.place(r, c)))?;
                    values.extend(v);
                    present.push(true);
                    bar.inc(1);
                }
                None => {
                    values.extend(std::iter::repeat_n(0.0, dim));
                    present.push(false);
                }
            }
        }
        bar.finish_and_clear();
        if fitting_audio {
            let rows = fit.expect("fitting");
            let bins = match codec {
                Codec::Audio { spectrogram, .. } => spectrogram.bins,
                _ => unreachable!("audio"),
            };
            let train: Vec<f32> = rows
                .iter()
                .filter(|&&r| present[r])
                .flat_map(|&r| values[r * dim..(r + 1) * dim].iter().copied())
                .collect();
            if train.is_empty() {
                bail!(
                    "column {:?} has no training clips to fit the audio normaliser on",
                    self.header[c]
                );
            }
            let fitted = Normalizer::fit(&train, bins)?;
            fitted.apply(&mut values)?;
            if let Codec::Audio { normalizer, .. } = codec {
                *normalizer = fitted;
            }
        }
        Ok((dim, values, present))
    }
}

/// Why a value `v`, `z` standard deviations from its column's mean in the training data, is
/// refused ([`mvae::data::normalizer::MAX_STANDARD`]).
pub fn outlier_reason(v: f32, z: f64) -> String {
    format!(
        "{v} lies {z:.1e} standard deviations from the column's mean in the training data (at \
         most {:e}); the model cannot encode it",
        mvae::data::normalizer::MAX_STANDARD
    )
}

/// A completed copy of a manifest: what `impute` filled and the files it wrote.
pub struct Written {
    /// Files generated for missing images and sounds.
    pub files: Vec<PathBuf>,
}

impl Manifest {
    /// Writes the manifest to `out` with every missing modality of `codecs` filled from
    /// `filled` (numbers, class names, and for images and sounds a generated file in
    /// `<out stem>_files/` beside `out`, named in the cell relative to `out`'s folder). Every
    /// other cell, the header (or keys) and the row order are as in the input, byte for byte.
    pub fn write_filled(
        &self,
        codecs: &Codecs,
        data: &MultimodalDataset,
        filled: &MultimodalDataset,
        out: &Path,
    ) -> Result<Written> {
        // (row, column) -> the new cell of a cell that was empty.
        let mut fills: BTreeMap<(usize, usize), Fill> = BTreeMap::new();
        let mut files = Vec::new();
        let out_dir = out.parent().unwrap_or(Path::new("."));
        let stem = out
            .file_stem()
            .map_or_else(|| "imputed".into(), |s| s.to_string_lossy().into_owned());
        let files_dir = out_dir.join(format!("{stem}_files"));
        for (name, codec) in codecs {
            let col = data.column(name).expect("built from the codecs");
            let new = filled.column(name).expect("impute keeps columns");
            for r in (0..self.len()).filter(|&r| !col.present()[r]) {
                let v = new.sample(r).expect("in range");
                match codec {
                    Codec::Columns {
                        columns,
                        normalizer,
                    } => {
                        let mut v = v.to_vec();
                        normalizer.invert(&mut v)?;
                        for (j, cname) in columns.iter().enumerate() {
                            let c = self.needed(cname)?;
                            if self.cell(r, c).is_some() {
                                continue;
                            }
                            if !v[j].is_finite() {
                                bail!(
                                    "line {}: the model gave a non-finite value for column {cname}",
                                    self.lines[r]
                                );
                            }
                            fills.insert((r, c), Fill::Number(v[j]));
                        }
                    }
                    Codec::Label { .. } => {
                        let c = self.needed(name)?;
                        let k = v[0] as usize;
                        let text = codec.class_name(k).unwrap_or_else(|| k.to_string());
                        fills.insert((r, c), Fill::Text(text));
                    }
                    Codec::Image { .. } | Codec::Audio { .. } => {
                        let c = self.needed(name)?;
                        std::fs::create_dir_all(&files_dir)
                            .with_context(|| format!("creating {}", files_dir.display()))?;
                        let path = codec.write_file(
                            v,
                            &files_dir.join(format!("line{}_{name}", self.lines[r])),
                        )?;
                        let rel = path.strip_prefix(out_dir).unwrap_or(&path);
                        fills.insert((r, c), Fill::Text(rel.to_string_lossy().replace('\\', "/")));
                        files.push(path);
                    }
                }
            }
        }
        let bytes = match &self.raw {
            Raw::Csv { header, rows, crlf } => {
                let terminator = if *crlf {
                    csv::Terminator::CRLF
                } else {
                    csv::Terminator::Any(b'\n')
                };
                let mut w = csv::WriterBuilder::new()
                    .has_headers(false)
                    .flexible(true)
                    .terminator(terminator)
                    .from_writer(Vec::new());
                w.write_byte_record(header)?;
                for (r, record) in rows.iter().enumerate() {
                    for (c, cell) in record.iter().enumerate() {
                        match fills.get(&(r, c)) {
                            Some(f) => w.write_field(f.text().as_bytes())?,
                            None => w.write_field(cell)?,
                        }
                    }
                    w.write_record(None::<&[u8]>)?;
                }
                w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?
            }
            Raw::Jsonl {
                text,
                row_of_line,
                rows,
                crlf,
                final_newline,
            } => {
                // Lines without a fill are copied; a line with one is the object again, its
                // keys in the file's order and the filled keys set.
                let end = if *crlf { "\r\n" } else { "\n" };
                let mut outs = Vec::with_capacity(text.len());
                for (line, row) in text.iter().zip(row_of_line) {
                    let filled_keys: Vec<(usize, &Fill)> = row
                        .map(|r| {
                            (0..self.header.len())
                                .filter_map(|c| fills.get(&(r, c)).map(|f| (c, f)))
                                .collect()
                        })
                        .unwrap_or_default();
                    let Some(r) = row.filter(|_| !filled_keys.is_empty()) else {
                        outs.push(line.clone());
                        continue;
                    };
                    let mut object = rows[r].clone();
                    for (c, f) in filled_keys {
                        object.set(&self.header[c], f.json());
                    }
                    outs.push(object.to_json()?);
                }
                let mut bytes = outs.join(end);
                if *final_newline {
                    bytes.push_str(end);
                }
                bytes.into_bytes()
            }
        };
        mvae::data::atomic::write_bytes(out, &bytes)
            .with_context(|| format!("writing {}", out.display()))?;
        Ok(Written { files })
    }
}

/// A filled cell.
enum Fill {
    Number(f32),
    Text(String),
}

impl Fill {
    fn text(&self) -> String {
        match self {
            Fill::Number(v) => v.to_string(),
            Fill::Text(t) => t.clone(),
        }
    }

    fn json(&self) -> serde_json::Value {
        match self {
            Fill::Number(v) => serde_json::Number::from_f64(f64::from(*v))
                .map_or(serde_json::Value::Null, serde_json::Value::Number),
            Fill::Text(t) => serde_json::Value::String(t.clone()),
        }
    }
}

/// A JSON object with its keys in the order written (a later duplicate key replaces the
/// earlier value, as JSON parsers do).
#[derive(Clone, Debug, Default)]
struct Object(Vec<(String, serde_json::Value)>);

impl Object {
    fn get(&self, key: &str) -> Option<&serde_json::Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Sets `key`, in its place if present, else at the end.
    fn set(&mut self, key: &str, value: serde_json::Value) {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key.to_string(), value)),
        }
    }

    fn to_json(&self) -> Result<String> {
        let mut parts = Vec::with_capacity(self.0.len());
        for (k, v) in &self.0 {
            parts.push(format!(
                "{}:{}",
                serde_json::to_string(k)?,
                serde_json::to_string(v)?
            ));
        }
        Ok(format!("{{{}}}", parts.join(",")))
    }
}

impl<'de> Deserialize<'de> for Object {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Object;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Object, A::Error> {
                let mut o = Object::default();
                while let Some((k, v)) = map.next_entry::<String, serde_json::Value>()? {
                    o.set(&k, v);
                }
                Ok(o)
            }
        }
        d.deserialize_map(Visit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inferred_image_sizes_keep_small_images_and_shrink_large_ones() {
        assert_eq!(fit_side(28, 28), (28, 28));
        assert_eq!(fit_side(64, 10), (64, 10));
        assert_eq!(fit_side(640, 480), (64, 48));
        assert_eq!(fit_side(100, 1), (64, 1));
        assert_eq!(fit_side(1, 1000), (1, 64));
    }

    /// JSON objects keep their keys in the order written; a later duplicate replaces the
    /// value in place; numbers and booleans become cells, null and "" missing ones.
    #[test]
    fn json_lines_keep_key_order_and_read_scalars() {
        let o: Object = serde_json::from_str(r#"{"b": 1, "a": "x", "b": 2.5}"#).unwrap();
        assert_eq!(o.to_json().unwrap(), r#"{"b":2.5,"a":"x"}"#);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.jsonl");
        std::fs::write(
            &p,
            "{\"z\": true, \"y\": 3}\n\n{\"y\": null, \"x\": \" \"}\r\n",
        )
        .unwrap();
        let m = Manifest::read(&p).unwrap();
        assert_eq!(m.header, ["z", "y", "x"]);
        assert_eq!(m.len(), 2);
        assert_eq!(
            (m.cell(0, 0), m.cell(0, 1), m.cell(0, 2)),
            (Some("true"), Some("3"), None)
        );
        assert_eq!((m.cell(1, 1), m.cell(1, 2)), (None, None));
        assert!(
            m.place(1, 1).ends_with("m.jsonl: line 3: key \"y\""),
            "{}",
            m.place(1, 1)
        );
        std::fs::write(&p, "{\"a\": 1}\n[1, 2]\n").unwrap();
        let e = Manifest::read(&p).err().unwrap().to_string();
        assert!(e.contains("m.jsonl: line 2: not a JSON object"), "{e}");
    }

    /// Inference: words are classes (numbers among them ordered as numbers), distinct words
    /// an identifier, a number column with a word an error; declared kinds win.
    #[test]
    fn columns_are_inferred_from_their_cells() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.csv");
        let mut text = String::from("id,grade,colour,x\n");
        for i in 0..30 {
            let colour = ["red", "green", ""][i % 3];
            text.push_str(&format!(
                "r{i},{},{colour},{}\n",
                [10, 2, 1][i % 3],
                i as f32 / 7.0
            ));
        }
        std::fs::write(&p, &text).unwrap();
        let m = Manifest::read(&p).unwrap();
        let mut decls = BTreeMap::new();
        decls.insert(
            "grade".to_string(),
            ModalityDecl {
                kind: Some(Kind::Label),
                ..ModalityDecl::default()
            },
        );
        let layout = infer(&m, &decls, &BTreeMap::new()).unwrap();
        assert_eq!(
            layout.codecs["grade"],
            Codec::named_label(vec!["1".into(), "2".into(), "10".into()])
        );
        assert_eq!(
            layout.codecs["colour"],
            Codec::named_label(vec!["green".into(), "red".into()])
        );
        assert!(matches!(layout.codecs["x"], Codec::Columns { .. }));
        assert!(!layout.codecs.contains_key("id"));
        assert!(
            layout.notes.iter().any(|n| n.starts_with("id: skipped")),
            "{:?}",
            layout.notes
        );
        let without = infer(&m, &BTreeMap::new(), &BTreeMap::new()).unwrap();
        assert!(matches!(without.codecs["grade"], Codec::Columns { .. }));
        // Normalisers are fitted on the rows asked for; the class words read as their index.
        let mut codecs = layout.codecs.clone();
        let data = m.load(&mut codecs, Some(&[0, 1, 2, 3])).unwrap();
        let Codec::Columns { normalizer, .. } = &codecs["x"] else {
            unreachable!()
        };
        assert!(
            (normalizer.mean[0] - 1.5 / 7.0).abs() < 1e-6,
            "{normalizer:?}"
        );
        let colour = data.column("colour").unwrap();
        assert_eq!(&colour.values()[..3], &[1.0, 0.0, 0.0]);
        assert_eq!(&colour.present()[..3], &[true, true, false]);
    }
}
