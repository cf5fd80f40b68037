//! Load options: strictness and the key map from a file's names to the model's.
use std::borrow::Cow;

/// How [`load_with`](super::load_with) matches a file's tensors to a model's.
///
/// The default is strict with no key map, which is what [`load`](super::load)
/// does.
///
/// ```
/// use static_nn::weights::LoadOptions;
/// // A PyTorch class whose layers live in `self.features = nn.Sequential(...)`,
/// // loaded into a static-nn tuple, ignoring tensors the model lacks.
/// let opts = LoadOptions::default().non_strict().map("features.", "");
/// assert_eq!(opts.model_key("features.0.weight"), "0.weight");
/// assert_eq!(opts.model_key("fc.bias"), "fc.bias");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadOptions {
    /// `true` (the default): a tensor in the file that the model lacks is a
    /// [`WeightsError::Unexpected`](super::WeightsError::Unexpected).
    /// `false`: such tensors are ignored and listed in
    /// [`LoadReport::ignored`]. Missing tensors are an error either way.
    pub strict: bool,
    /// Renames from the file's keys to the model's, tried in order:
    /// - `(from, to)` where `from` equals the file key renames that key;
    /// - otherwise, `(from, to)` where `from` ends with `.` renames every key
    ///   starting with `from` by replacing that prefix with `to` (the longest
    ///   such prefix wins): `("features.", "")` strips a prefix,
    ///   `("encoder.", "0.")` replaces one.
    ///
    /// Keys that no pair matches keep their name.
    pub key_map: Vec<(String, String)>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            strict: true,
            key_map: Vec::new(),
        }
    }
}

impl LoadOptions {
    /// These options with `strict = false`: extra tensors are ignored.
    pub fn non_strict(mut self) -> Self {
        self.strict = false;
        self
    }

    /// These options with one more key-map pair (see [`key_map`](Self::key_map)).
    pub fn map(mut self, from: impl Into<String>, to: impl Into<String>) -> Self {
        self.key_map.push((from.into(), to.into()));
        self
    }

    /// The model's name for the file's tensor `file_key`.
    pub fn model_key<'a>(&self, file_key: &'a str) -> Cow<'a, str> {
        if let Some((_, to)) = self.key_map.iter().find(|(from, _)| from == file_key) {
            return Cow::Owned(to.clone());
        }
        let prefix = self
            .key_map
            .iter()
            .filter(|(from, _)| from.ends_with('.') && file_key.starts_with(from.as_str()))
            .max_by_key(|(from, _)| from.len());
        match prefix {
            Some((from, to)) => Cow::Owned(format!("{to}{}", &file_key[from.len()..])),
            None => Cow::Borrowed(file_key),
        }
    }
}

/// What [`load_with`](super::load_with) did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// The model's tensors that were loaded, in the model's order (all of them).
    pub loaded: Vec<String>,
    /// The file's tensors that matched no model tensor and were ignored
    /// (non-strict loading only), sorted.
    pub ignored: Vec<String>,
    /// `(file key, model key)` for every tensor the key map renamed, sorted.
    pub renamed: Vec<(String, String)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_pairs_win_over_prefixes_and_longest_prefix_wins() {
        let o = LoadOptions::default()
            .map("net.", "")
            .map("net.head.", "9.")
            .map("net.head.w", "9.weight");
        assert_eq!(o.model_key("net.head.w"), "9.weight");
        assert_eq!(o.model_key("net.head.bias"), "9.bias");
        assert_eq!(o.model_key("net.0.weight"), "0.weight");
        assert_eq!(o.model_key("other"), "other");
        assert!(o.strict);
        assert!(!o.non_strict().strict);
    }
}
