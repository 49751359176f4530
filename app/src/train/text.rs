//! Text data for classification: GLUE TSV files (one sentence, as SST-2, or a
//! pair, as MNLI) and plain `label<TAB>text` files; a WordPiece vocabulary
//! trained on the training split with the `tokenizers` crate, saved beside the
//! run so that a resumed run encodes exactly as before.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::data::dataloader::batcher::Batcher;
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};

use crate::experiment::{DataFormat, DataSpec};
use crate::train::data::Item;
use crate::train::data_error::DataError;

use tokenizers::models::TrainerWrapper;
use tokenizers::models::wordpiece::{WordPiece, WordPieceTrainer};
use tokenizers::normalizers::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{
    AddedToken, PaddingDirection, PaddingParams, PaddingStrategy, Tokenizer, TruncationParams,
};

/// How a text file is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextFormat {
    /// `label<TAB>text`, no header.
    LabelText,
    /// GLUE with a header row: `sentence` and `label` columns (SST-2, CoLA…).
    GlueSingle,
    /// GLUE with a header row: `sentence1`, `sentence2` and `gold_label` (MNLI)
    /// or `label` columns.
    GluePair,
}

/// One example: one text, or a pair, and its class.
#[derive(Clone, Debug, PartialEq)]
pub struct TextExample {
    pub a: String,
    pub b: Option<String>,
    pub label: usize,
}

/// Both splits and the class names (sorted; a class is its index).
#[derive(Clone, Debug)]
pub struct TextData {
    pub train: Vec<TextExample>,
    pub val: Vec<TextExample>,
    pub classes: Vec<String>,
}

/// (label, a, b) rows of one file; errors name the file and line.
fn read_rows(
    path: &Path,
    format: TextFormat,
) -> Result<Vec<(String, String, Option<String>)>, DataError> {
    let text = std::fs::read_to_string(path).map_err(|source| DataError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut lines = text.lines().enumerate();
    let at = |line: usize, what: String| DataError::Line {
        path: path.to_path_buf(),
        line: line + 1,
        what,
    };
    let columns: Option<BTreeMap<String, usize>> = match format {
        TextFormat::LabelText => None,
        TextFormat::GlueSingle | TextFormat::GluePair => {
            let (_, header) = lines
                .next()
                .ok_or_else(|| DataError::content(path, "empty file"))?;
            Some(
                header
                    .split('\t')
                    .enumerate()
                    .map(|(i, name)| (name.trim().to_string(), i))
                    .collect(),
            )
        }
    };
    let column = |names: &[&str]| -> Result<usize, DataError> {
        let cols = columns.as_ref().expect("a header");
        names
            .iter()
            .find_map(|n| cols.get(*n).copied())
            .ok_or_else(|| {
                let found = cols.keys().cloned().collect::<Vec<_>>().join(", ");
                let what = format!(
                    "no {} column in the header (found: {found})",
                    names.join(" or ")
                );
                DataError::content(path, what)
            })
    };
    let (label_col, a_col, b_col) = match format {
        TextFormat::LabelText => (0, 1, None),
        TextFormat::GlueSingle => (column(&["label"])?, column(&["sentence"])?, None),
        TextFormat::GluePair => (
            column(&["gold_label", "label"])?,
            column(&["sentence1"])?,
            Some(column(&["sentence2"])?),
        ),
    };
    let mut rows = Vec::new();
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = match format {
            // The text may itself hold tabs only in the last column.
            TextFormat::LabelText => line.splitn(2, '\t').collect(),
            _ => line.split('\t').collect(),
        };
        let get = |c: usize, what: &str| -> Result<String, DataError> {
            fields
                .get(c)
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .ok_or_else(|| at(i, format!("no {what} (column {})", c + 1)))
        };
        let label = get(label_col, "label")?;
        let a = get(a_col, "text")?;
        let b = b_col.map(|c| get(c, "second sentence")).transpose()?;
        rows.push((label, a, b));
    }
    if rows.is_empty() {
        return Err(DataError::content(path, "no examples"));
    }
    Ok(rows)
}

/// The training and validation files of a directory: `train.tsv`, and
/// `valid.tsv`, `dev.tsv` or (MNLI) `dev_matched.tsv`.
pub fn split_files(dir: &Path) -> Result<(PathBuf, PathBuf), DataError> {
    let train = dir.join("train.tsv");
    if !train.is_file() {
        return Err(DataError::content(dir, "no train.tsv"));
    }
    ["valid.tsv", "dev.tsv", "dev_matched.tsv"]
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
        .map(|val| (train, val))
        .ok_or_else(|| {
            DataError::content(
                dir,
                "no validation file (valid.tsv, dev.tsv or dev_matched.tsv)",
            )
        })
}

/// Reads both splits of `dir`. Classes come from the training split; a
/// validation label it never saw is an error.
pub fn load(dir: &Path, format: TextFormat) -> Result<TextData, DataError> {
    let (train_path, val_path) = split_files(dir)?;
    let train_rows = read_rows(&train_path, format)?;
    let val_rows = read_rows(&val_path, format)?;
    let mut classes: Vec<String> = train_rows.iter().map(|r| r.0.clone()).collect();
    classes.sort();
    classes.dedup();
    let index = |label: &str, path: &Path| -> Result<usize, DataError> {
        classes
            .binary_search_by(|c| c.as_str().cmp(label))
            .map_err(|_| {
                let what = format!(
                    "label \"{label}\" is not among the training labels ({})",
                    classes.join(", ")
                );
                DataError::content(path, what)
            })
    };
    let to_examples = |rows: Vec<(String, String, Option<String>)>, path: &Path| {
        rows.into_iter()
            .map(|(label, a, b)| {
                Ok(TextExample {
                    label: index(&label, path)?,
                    a,
                    b,
                })
            })
            .collect::<Result<Vec<_>, DataError>>()
    };
    Ok(TextData {
        train: to_examples(train_rows, &train_path)?,
        val: to_examples(val_rows, &val_path)?,
        classes,
    })
}

impl TextFormat {
    /// The text layout of an experiment's data format, `None` for images.
    pub fn of(format: DataFormat) -> Option<TextFormat> {
        match format {
            DataFormat::Text => Some(TextFormat::LabelText),
            DataFormat::GlueSingle => Some(TextFormat::GlueSingle),
            DataFormat::GluePair => Some(TextFormat::GluePair),
            _ => None,
        }
    }
}

/// A run's text data, encoded: the vocabulary and both splits as token ids.
pub struct TextTask {
    pub vocabulary: Arc<Vocabulary>,
    pub classes: Vec<String>,
    pub train: Arc<Vec<(Encoded, usize)>>,
    pub val: Arc<Vec<(Encoded, usize)>>,
}

impl TextTask {
    /// Loads `spec`'s data from `path` and encodes it with the vocabulary saved
    /// at `vocabulary` (a resumed run), or one trained now on the training split
    /// and saved there.
    pub fn prepare(spec: &DataSpec, path: &Path, vocabulary: &Path) -> Result<TextTask, DataError> {
        let format = TextFormat::of(spec.format).ok_or(DataError::Setting("not a text format"))?;
        let mut data = load(path, format)?;
        if let Some(n) = spec.train_limit {
            data.train.truncate(n);
        }
        if let Some(n) = spec.val_limit {
            data.val.truncate(n);
        }
        // Anything there is loaded (or refused, if not a regular file).
        let vocab = if vocabulary.symlink_metadata().is_ok() {
            Vocabulary::load(vocabulary)?
        } else {
            let v = Vocabulary::train(&data.train, spec.vocab_size(), spec.max_len())?;
            v.save(vocabulary)?;
            v
        };
        let encode = |examples: &[TextExample]| {
            examples
                .iter()
                .map(|e| Ok((vocab.encode(e)?, e.label)))
                .collect::<Result<Vec<_>, DataError>>()
        };
        Ok(TextTask {
            train: Arc::new(encode(&data.train)?),
            val: Arc::new(encode(&data.val)?),
            vocabulary: Arc::new(vocab),
            classes: data.classes,
        })
    }
}

/// Token ids `[batch, tokens]` padded to the batch's longest example, where
/// `pad` is true, and class targets.
#[derive(Clone, Debug)]
pub struct TextBatch {
    pub ids: Tensor<2, Int>,
    pub pad: Tensor<2, Bool>,
    pub targets: Tensor<1, Int>,
    /// The real token ids of the first few examples (for mask snapshots).
    pub first: Vec<Vec<u32>>,
}

/// Examples kept as ids in [`TextBatch::first`].
pub const FIRST_KEPT: usize = 4;

#[derive(Clone)]
pub struct TextBatcher {
    pub examples: Arc<Vec<(Encoded, usize)>>,
}

impl Batcher<Item, TextBatch> for TextBatcher {
    fn batch(&self, items: Vec<Item>, device: &Device) -> TextBatch {
        let chosen: Vec<&(Encoded, usize)> =
            items.iter().map(|i| &self.examples[i.index]).collect();
        // Padding only to the longest example of the batch: short sentences
        // cost short sequences.
        let len = chosen.iter().map(|(e, _)| e.len).max().unwrap_or(1).max(1);
        let n = chosen.len();
        let mut ids = Vec::with_capacity(n * len);
        let mut pad = Vec::with_capacity(n * len);
        for (e, _) in &chosen {
            for t in 0..len {
                let real = t < e.len;
                ids.push(if real { e.ids[t] as i64 } else { 0 });
                pad.push(!real);
            }
        }
        TextBatch {
            ids: Tensor::from_data(TensorData::new(ids, [n, len]), device),
            pad: Tensor::from_data(TensorData::new(pad, [n, len]), device),
            targets: Tensor::from_data(
                TensorData::new(chosen.iter().map(|(_, l)| *l as i64).collect(), [n]),
                device,
            ),
            first: chosen
                .iter()
                .take(FIRST_KEPT)
                .map(|(e, _)| e.ids[..e.len].to_vec())
                .collect(),
        }
    }
}

pub const PAD: &str = "[PAD]";
pub const UNK: &str = "[UNK]";
pub const CLS: &str = "[CLS]";
pub const SEP: &str = "[SEP]";

/// A WordPiece tokenizer: lower-cased BERT normalisation, `[CLS] a [SEP] b [SEP]`,
/// truncated and padded to `max_len` with `[PAD]` (id 0).
pub struct Vocabulary {
    tokenizer: Tokenizer,
    pub max_len: usize,
}

/// One encoded example: token ids (padded) and how many are real.
#[derive(Clone, Debug, PartialEq)]
pub struct Encoded {
    pub ids: Vec<u32>,
    pub len: usize,
}

impl Vocabulary {
    /// Trains on the training texts (both sentences of pairs).
    pub fn train(
        examples: &[TextExample],
        vocab_size: usize,
        max_len: usize,
    ) -> Result<Vocabulary, DataError> {
        let failed = |doing| move |source| DataError::Vocabulary { doing, source };
        let mut trainer: TrainerWrapper = WordPieceTrainer::builder()
            .vocab_size(vocab_size)
            .min_frequency(2)
            .show_progress(false)
            .special_tokens(
                [PAD, UNK, CLS, SEP]
                    .iter()
                    .map(|t| AddedToken::from(*t, true))
                    .collect(),
            )
            .build()
            .into();
        let model = WordPiece::builder()
            .unk_token(UNK.into())
            .build()
            .map_err(failed("building the vocabulary"))?;
        let mut tokenizer = Tokenizer::new(model);
        tokenizer
            .with_normalizer(Some(BertNormalizer::default()))
            .map_err(failed("building the vocabulary"))?;
        tokenizer.with_pre_tokenizer(Some(BertPreTokenizer));
        let texts = examples
            .iter()
            .flat_map(|e| std::iter::once(&e.a).chain(e.b.as_ref()));
        tokenizer
            .train(&mut trainer, texts)
            .map_err(failed("training the vocabulary"))?;
        Self::finish(tokenizer, max_len)
    }

    /// Adds the `[CLS]`/`[SEP]` framing, truncation and padding.
    fn finish(mut tokenizer: Tokenizer, max_len: usize) -> Result<Vocabulary, DataError> {
        let id = |t: &str| {
            tokenizer.token_to_id(t).ok_or(DataError::Setting(
                "the vocabulary lacks [PAD], [CLS] or [SEP]",
            ))
        };
        let (pad, cls, sep) = (id(PAD)?, id(CLS)?, id(SEP)?);
        if pad != 0 {
            return Err(DataError::Setting("the padding token must be id 0"));
        }
        tokenizer.with_post_processor(Some(BertProcessing::new(
            (SEP.into(), sep),
            (CLS.into(), cls),
        )));
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                ..Default::default()
            }))
            .map_err(|source| DataError::Vocabulary {
                doing: "setting the truncation",
                source,
            })?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::Fixed(max_len),
            direction: PaddingDirection::Right,
            pad_id: pad,
            pad_token: PAD.into(),
            ..Default::default()
        }));
        Ok(Vocabulary { tokenizer, max_len })
    }

    /// Saves the whole tokenizer (vocabulary and settings) as JSON.
    pub fn save(&self, path: &Path) -> Result<(), DataError> {
        self.tokenizer
            .save(path, false)
            .map_err(|e| DataError::content(path, e.to_string()))
    }

    pub fn load(path: &Path) -> Result<Vocabulary, DataError> {
        // The run directory's copy: never a link or a FIFO, nor unbounded.
        let bytes = crate::run::files::read_regular(path, crate::run::dir::WHOLE_FILE_MAX)
            .map_err(|e| DataError::content(path, e.to_string()))?;
        let tokenizer =
            Tokenizer::from_bytes(bytes).map_err(|e| DataError::content(path, e.to_string()))?;
        let max_len = tokenizer
            .get_padding()
            .and_then(|p| match p.strategy {
                PaddingStrategy::Fixed(n) => Some(n),
                PaddingStrategy::BatchLongest => None,
            })
            .ok_or_else(|| DataError::content(path, "no fixed padding length"))?;
        Ok(Vocabulary { tokenizer, max_len })
    }

    pub fn size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }

    pub fn encode(&self, example: &TextExample) -> Result<Encoded, DataError> {
        let input = match &example.b {
            None => tokenizers::EncodeInput::Single(example.a.as_str().into()),
            Some(b) => (example.a.as_str(), b.as_str()).into(),
        };
        let enc = self
            .tokenizer
            .encode(input, true)
            .map_err(|source| DataError::Vocabulary {
                doing: "encoding a text",
                source,
            })?;
        let len = enc.get_attention_mask().iter().filter(|&&m| m == 1).count();
        Ok(Encoded {
            ids: enc.get_ids().to_vec(),
            len,
        })
    }

    /// The tokens of ids (for the dashboard's row labels).
    pub fn tokens(&self, ids: &[u32]) -> Vec<String> {
        ids.iter()
            .map(|&i| self.tokenizer.id_to_token(i).unwrap_or_else(|| UNK.into()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn austen() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/austen-sentences")
    }

    #[test]
    fn the_committed_austen_set_has_six_balanced_novels() {
        let data = load(&austen(), TextFormat::LabelText).unwrap();
        assert_eq!((data.train.len(), data.val.len()), (6000, 1200));
        assert_eq!(data.classes.len(), 6);
        assert_eq!(data.classes[0], "emma");
        for c in 0..6 {
            assert_eq!(data.val.iter().filter(|e| e.label == c).count(), 200);
        }
    }

    #[test]
    fn glue_single_and_pair_files_by_their_headers() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("train.tsv"),
            "sentence\tlabel\na gripping film \t1\nflat and dull\t0\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("dev.tsv"), "sentence\tlabel\nfine\t1\n").unwrap();
        let d = load(dir.path(), TextFormat::GlueSingle).unwrap();
        assert_eq!(d.classes, ["0", "1"]);
        assert_eq!(
            d.train[0],
            TextExample {
                a: "a gripping film".into(),
                b: None,
                label: 1
            }
        );

        let pair = tempfile::tempdir().unwrap();
        let header = "index\tpromptID\tsentence1\tsentence2\tlabel1\tgold_label\n";
        std::fs::write(
            pair.path().join("train.tsv"),
            format!("{header}0\t7\tA man sleeps.\tA person rests.\tentailment\tentailment\n1\t8\tIt rains.\tIt is dry.\tcontradiction\tcontradiction\n"),
        )
        .unwrap();
        std::fs::write(
            pair.path().join("dev_matched.tsv"),
            format!("{header}0\t9\tA dog runs.\tAn animal moves.\tneutral\tentailment\n"),
        )
        .unwrap();
        let d = load(pair.path(), TextFormat::GluePair).unwrap();
        assert_eq!(d.classes, ["contradiction", "entailment"]);
        assert_eq!(d.train[1].b.as_deref(), Some("It is dry."));
        // gold_label wins over label1.
        assert_eq!(d.val[0].label, 1);
    }

    #[test]
    fn malformed_files_name_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("train.tsv"), "pos\tgood\nneg\n").unwrap();
        std::fs::write(dir.path().join("valid.tsv"), "pos\tok\n").unwrap();
        let err = load(dir.path(), TextFormat::LabelText)
            .unwrap_err()
            .to_string();
        assert!(err.ends_with("train.tsv:2: no text (column 2)"), "{err}");
        std::fs::write(dir.path().join("train.tsv"), "pos\tgood\n").unwrap();
        std::fs::write(dir.path().join("valid.tsv"), "meh\tok\n").unwrap();
        let err = load(dir.path(), TextFormat::LabelText)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("label \"meh\" is not among the training labels (pos)"),
            "{err}"
        );
        let err = load(dir.path(), TextFormat::GlueSingle)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no label column in the header"), "{err}");
    }

    /// The same sentences give the same vocabulary, run after run (a run's
    /// seed must fix its tokens); upstream's trainer numbered its subword
    /// tokens in a hash map's order, different in every map.
    #[test]
    fn the_same_sentences_train_the_same_vocabulary() {
        let data = load(&austen(), TextFormat::LabelText).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let saved = |i: usize| {
            let path = dir.path().join(format!("{i}.json"));
            Vocabulary::train(&data.train[..400], 2000, 32)
                .unwrap()
                .save(&path)
                .unwrap();
            std::fs::read(path).unwrap()
        };
        let first = saved(0);
        for i in 1..6 {
            assert!(saved(i) == first, "training {i} gave another vocabulary");
        }
    }

    #[test]
    fn a_vocabulary_trained_on_austen_frames_pads_truncates_and_reloads() {
        let data = load(&austen(), TextFormat::LabelText).unwrap();
        let vocab = Vocabulary::train(&data.train, 3000, 16).unwrap();
        assert!(
            vocab.size() > 1000 && vocab.size() <= 3000,
            "{}",
            vocab.size()
        );
        let short = TextExample {
            a: "It is a truth universally acknowledged.".into(),
            b: None,
            label: 0,
        };
        let e = vocab.encode(&short).unwrap();
        assert_eq!(e.ids.len(), 16);
        let tokens = vocab.tokens(&e.ids);
        assert_eq!(tokens[0], CLS);
        assert_eq!(tokens[e.len - 1], SEP);
        assert!(
            e.ids[e.len..].iter().all(|&i| i == 0),
            "padded with [PAD] = 0"
        );
        assert!(tokens.contains(&"truth".to_string()), "{tokens:?}");
        let long = &data.train.iter().max_by_key(|e| e.a.len()).unwrap();
        let e = vocab.encode(long).unwrap();
        assert_eq!((e.ids.len(), e.len), (16, 16), "truncated to the maximum");
        assert_eq!(vocab.tokens(&e.ids)[15], SEP);
        let pair = TextExample {
            a: "She smiled.".into(),
            b: Some("He left.".into()),
            label: 0,
        };
        let p = vocab.tokens(&vocab.encode(&pair).unwrap().ids);
        assert_eq!(p.iter().filter(|t| *t == SEP).count(), 2, "{p:?}");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer.json");
        vocab.save(&path).unwrap();
        let again = Vocabulary::load(&path).unwrap();
        assert_eq!(again.max_len, 16);
        for ex in data.val.iter().take(50) {
            assert_eq!(again.encode(ex).unwrap(), vocab.encode(ex).unwrap());
        }
    }
}
