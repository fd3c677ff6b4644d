//! A GGUF model loaded through llama.cpp, with what prompting needs of it.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Instant;

use anyhow::{Context as _, bail};
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::token_type::LlamaTokenAttr;
use serde::Serialize;

use crate::family::{self, Detection, FimOrder, ModelTraits, PromptFormat};
use crate::prompt::{SpecialTokens, TokenId, Tokenize};

/// llama.cpp's global state, initialised once per process. Its log goes to
/// `tracing`, never to stdout (stdout carries the LSP stream).
pub(crate) fn backend() -> &'static LlamaBackend {
    static BACKEND: OnceLock<LlamaBackend> = OnceLock::new();
    BACKEND.get_or_init(|| {
        llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
        LlamaBackend::init().expect("llama.cpp backend is initialised only here")
    })
}

/// A device llama.cpp can run layers on.
#[derive(Clone, Debug, Serialize)]
pub struct Device {
    /// llama.cpp's name for it ("CPU", "Vulkan0", "CUDA0").
    pub name: String,
    pub description: String,
    /// Its backend ("CPU", "Vulkan", "CUDA").
    pub backend: String,
    /// Whether layers can be offloaded to it (a GPU, integrated or not).
    pub gpu: bool,
    pub memory_total: usize,
    pub memory_free: usize,
}

/// The devices of this build's llama.cpp backends: the CPU, and each GPU a
/// `cuda` or `vulkan` build finds (`n_gpu_layers` go to them).
pub fn devices() -> Vec<Device> {
    backend();
    llama_cpp_2::list_llama_ggml_backend_devices()
        .into_iter()
        .map(|device| Device {
            gpu: matches!(
                device.device_type,
                llama_cpp_2::LlamaBackendDeviceType::Gpu | llama_cpp_2::LlamaBackendDeviceType::IntegratedGpu
            ),
            name: device.name,
            description: device.description,
            backend: device.backend,
            memory_total: device.memory_total,
            memory_free: device.memory_free,
        })
        .collect()
}

/// How to load a model.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Load only the vocabulary (for tokenizer tests and prompt inspection).
    pub vocab_only: bool,
    pub n_gpu_layers: u32,
    /// Overrides the detected prompt format (from the registry or config).
    pub format: Option<PromptFormat>,
    pub fim_order: Option<FimOrder>,
}

/// What is known about a loaded model.
#[derive(Clone, Debug, Serialize)]
pub struct ModelInfo {
    pub name: String,
    pub path: PathBuf,
    pub detection: Detection,
    pub fim_order: FimOrder,
    pub n_ctx_train: u32,
    pub n_params: u64,
    pub size_bytes: u64,
    pub n_vocab: i32,
    pub has_chat_template: bool,
    pub load_ms: f64,
}

/// A loaded model: weights (or only the vocabulary) and its prompt format.
pub struct LoadedModel {
    pub(crate) model: LlamaModel,
    info: ModelInfo,
    special: SpecialTokens,
    stop_tokens: Vec<TokenId>,
    /// Whether the tokenizer can be cut at [`crate::prompt::cut`]'s points.
    can_cut: bool,
    /// Bytes of text per token id, filled in as ids are seen
    /// (`u32::MAX`: not yet known).
    token_bytes: Vec<AtomicU32>,
}

impl LoadedModel {
    /// The model at `path` loaded with `options`, shared: while one loaded
    /// with the same file and options lives (another engine's, a chat
    /// model's), it is returned instead of a second copy of the weights.
    /// Two `[[models]]` entries of one file that differ only in engine
    /// settings (context, threads, slots) thus hold the weights once.
    pub fn shared(path: &Path, options: &LoadOptions) -> anyhow::Result<Arc<Self>> {
        type Key = (PathBuf, bool, u32, Option<PromptFormat>, Option<FimOrder>);
        static LOADED: Mutex<Vec<(Key, Weak<LoadedModel>)>> = Mutex::new(Vec::new());
        let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
        let key = (canonical, options.vocab_only, options.n_gpu_layers, options.format, options.fim_order);
        // Held while loading, so that two engines starting together load
        // one copy.
        let mut loaded = LOADED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        loaded.retain(|(_, model)| model.strong_count() > 0);
        if let Some(model) = loaded.iter().find(|(k, _)| *k == key).and_then(|(_, model)| model.upgrade()) {
            return Ok(model);
        }
        let model = Arc::new(LoadedModel::load(path, options)?);
        loaded.push((key, Arc::downgrade(&model)));
        Ok(model)
    }

    pub fn load(path: &Path, options: &LoadOptions) -> anyhow::Result<Self> {
        if !path.is_file() {
            bail!("model file {} does not exist", path.display());
        }
        let started = Instant::now();
        let params =
            LlamaModelParams::default().with_vocab_only(options.vocab_only).with_n_gpu_layers(options.n_gpu_layers);
        let model = LlamaModel::load_from_file(backend(), path, &params)
            .with_context(|| format!("llama.cpp could not load {} as a GGUF model", path.display()))?;
        let load_ms = started.elapsed().as_secs_f64() * 1e3;

        let traits = traits_of(&model);
        let mut detection = family::detect(&traits);
        if let Some(format) = options.format
            && format != detection.format
        {
            detection.reason = format!("configured as {} ({})", format.name(), detection.reason);
            detection.format = format;
        }
        let special = special_tokens(&model, detection.format);
        if detection.format.is_fim() && (special.fim_prefix.is_none() || special.fim_middle.is_none()) {
            bail!(
                "{} is configured with the {} format, but its vocabulary lacks that format's FIM tokens",
                path.display(),
                detection.format.name()
            );
        }
        let fim_order = options.fim_order.unwrap_or_else(|| detection.format.default_order());
        let name =
            traits.name.clone().unwrap_or_else(|| path.file_stem().unwrap_or_default().to_string_lossy().into_owned());
        let stop_tokens = stop_tokens(&model, &special);
        let info = ModelInfo {
            name,
            path: path.to_owned(),
            detection,
            fim_order,
            n_ctx_train: if options.vocab_only { 0 } else { model.n_ctx_train() },
            n_params: if options.vocab_only { 0 } else { model.n_params() },
            size_bytes: if options.vocab_only { 0 } else { model.size() },
            n_vocab: model.n_vocab(),
            has_chat_template: traits.has_chat_template,
            load_ms,
        };
        let can_cut = can_cut(&model);
        let token_bytes = (0..model.n_vocab().max(0)).map(|_| AtomicU32::new(u32::MAX)).collect();
        Ok(LoadedModel { model, info, special, stop_tokens, can_cut, token_bytes })
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    pub fn special_tokens(&self) -> &SpecialTokens {
        &self.special
    }

    /// Whether generation stops at `token`: end of generation, end of text,
    /// and every FIM or repository token of the format.
    pub fn is_stop(&self, token: TokenId) -> bool {
        self.stop_tokens.contains(&token) || self.model.vocab().is_eog(LlamaToken(token))
    }

    /// The text of a token as it appears in generated output (control
    /// tokens render as nothing).
    pub fn piece(&self, token: TokenId, out: &mut Vec<u8>) {
        self.model.vocab().token_to_piece_into(LlamaToken(token), out, false, None);
    }

    /// The text of a token, special tokens included, for inspection.
    pub fn token_text(&self, token: TokenId) -> String {
        String::from_utf8_lossy(&self.model.vocab().token_to_piece(LlamaToken(token), true, None)).into_owned()
    }
}

impl Tokenize for LoadedModel {
    fn tokenize(&self, text: &str) -> Vec<TokenId> {
        if text.is_empty() {
            return Vec::new();
        }
        self.model.vocab().tokenize(text.as_bytes(), false, false).into_iter().map(|t| t.0).collect()
    }

    fn can_cut(&self) -> bool {
        self.can_cut
    }

    /// Adjacent pieces in one call to llama.cpp, whose cost per call is
    /// high for some families (it builds std::regex objects on every call
    /// for DeepSeek-Coder and StarCoder); the ids are split at the pieces'
    /// ends by their byte lengths. Cut points never fall inside a token, so
    /// a token that spans one means the text was not cut where it may be:
    /// the pieces are then tokenized one by one.
    fn tokenize_pieces(&self, text: &str, pieces: &[Range<usize>]) -> Vec<Vec<TokenId>> {
        let one_by_one = || pieces.iter().map(|range| self.tokenize(&text[range.clone()])).collect();
        let adjacent = pieces.windows(2).all(|pair| pair[0].end == pair[1].start);
        if !self.can_cut || pieces.len() <= 1 || !adjacent {
            return one_by_one();
        }
        self.run_ids(text, pieces).unwrap_or_else(one_by_one)
    }
}

impl LoadedModel {
    /// The ids of adjacent `pieces` tokenized in one call and split at the
    /// pieces' ends by the tokens' byte lengths; `None` if a token spans
    /// the end of a piece.
    fn run_ids(&self, text: &str, pieces: &[Range<usize>]) -> Option<Vec<Vec<TokenId>>> {
        let (first, last) = (pieces.first()?, pieces.last()?);
        let mut ids = self.tokenize(&text[first.start..last.end]).into_iter();
        let mut out = Vec::with_capacity(pieces.len());
        let mut at = first.start;
        for range in pieces {
            let mut piece = Vec::new();
            while at < range.end {
                let id = ids.next()?;
                at += self.token_bytes(id);
                piece.push(id);
            }
            if at != range.end {
                return None;
            }
            out.push(piece);
        }
        ids.next().is_none().then_some(out)
    }
}

impl LoadedModel {
    /// The number of bytes of text `token` stands for.
    fn token_bytes(&self, token: TokenId) -> usize {
        let Some(slot) = usize::try_from(token).ok().and_then(|i| self.token_bytes.get(i)) else { return 0 };
        match slot.load(Ordering::Relaxed) {
            u32::MAX => {
                let mut bytes = Vec::new();
                self.piece(token, &mut bytes);
                slot.store(bytes.len() as u32, Ordering::Relaxed);
                bytes.len()
            }
            known => known as usize,
        }
    }
}

/// Whether text can be tokenized in pieces cut at `prompt::cut`'s points: a BPE
/// vocabulary whose pre-tokenizer the cut rule is proven for, and no
/// user-defined token with whitespace in it (llama.cpp matches those in
/// plain text before pre-tokenizing, and one could span a cut).
fn can_cut(model: &LlamaModel) -> bool {
    let meta = |key: &str| model.meta_val_str(key).ok();
    let bpe = meta("tokenizer.ggml.model").as_deref() == Some("gpt2");
    let pre = meta("tokenizer.ggml.pre").unwrap_or_default();
    if !bpe || !crate::prompt::cut::CUT_SAFE_PRE_TOKENIZERS.contains(&pre.as_str()) {
        return false;
    }
    let vocab = model.vocab();
    (0..vocab.n_tokens()).map(LlamaToken).all(|token| {
        !vocab.attr(token).contains(LlamaTokenAttr::UserDefined)
            || vocab.text(token).is_none_or(|text| !text.to_bytes().iter().any(u8::is_ascii_whitespace))
    })
}

fn valid(token: LlamaToken) -> Option<TokenId> {
    (token.0 >= 0).then_some(token.0)
}

fn traits_of(model: &LlamaModel) -> ModelTraits {
    let meta = |key: &str| model.meta_val_str(key).ok().filter(|v| !v.is_empty());
    let vocab = model.vocab();
    let fim = [vocab.fim_pre(), vocab.fim_suf(), vocab.fim_mid()];
    let fim_prefix_text = valid(fim[0]).and_then(|_| vocab.text(fim[0]).map(|t| t.to_string_lossy().into_owned()));
    ModelTraits {
        architecture: meta("general.architecture"),
        tokenizer_pre: meta("tokenizer.ggml.pre"),
        name: meta("general.name"),
        fim_prefix_text,
        has_fim_tokens: fim.iter().all(|&t| valid(t).is_some()),
        has_chat_template: model.chat_template(None).is_ok(),
    }
}

/// Finds a special token by its exact text, for tokens llama.cpp does not
/// name (repository and file separators of some formats).
fn token_by_text(model: &LlamaModel, text: &str) -> Option<TokenId> {
    let ids = model.vocab().tokenize(text.as_bytes(), false, true);
    match ids.as_slice() {
        [id] if model.vocab().text(*id).is_some_and(|t| t.to_bytes() == text.as_bytes()) => Some(id.0),
        _ => None,
    }
}

fn special_tokens(model: &LlamaModel, format: PromptFormat) -> SpecialTokens {
    let vocab = model.vocab();
    let bos = vocab.should_add_bos().then(|| valid(vocab.bos())).flatten();
    let by_text = |i: usize| format.fim_token_texts().and_then(|texts| token_by_text(model, texts[i]));
    let repo = |i: usize| format.repo_token_texts().and_then(|texts| token_by_text(model, texts[i]));
    SpecialTokens {
        bos,
        fim_prefix: valid(vocab.fim_pre()).or_else(|| by_text(0)),
        fim_suffix: valid(vocab.fim_suf()).or_else(|| by_text(1)),
        fim_middle: valid(vocab.fim_mid()).or_else(|| by_text(2)),
        repo_name: repo(0).or_else(|| valid(vocab.fim_rep()).filter(|_| format.is_fim())),
        file_sep: repo(1).or_else(|| valid(vocab.fim_sep()).filter(|_| format.is_fim())),
    }
}

fn stop_tokens(model: &LlamaModel, special: &SpecialTokens) -> Vec<TokenId> {
    let vocab = model.vocab();
    let mut stops: Vec<TokenId> = [vocab.eos(), vocab.eot(), vocab.fim_pad()].into_iter().filter_map(valid).collect();
    stops.extend(
        [special.fim_prefix, special.fim_suffix, special.fim_middle, special.repo_name, special.file_sep]
            .into_iter()
            .flatten(),
    );
    stops.sort_unstable();
    stops.dedup();
    stops
}
