//! `config set`: change one value of a config file in place.
//!
//! The file is edited as text, using the byte spans the parser reports for each key and value,
//! so comments, key order, quoting and blank lines elsewhere stay exactly as they were. The
//! edited text is validated as a whole before anything is written, and written by replacing
//! the file (temp file + rename): a reader sees either the old file or the new one.

use std::fs;
use std::io::{self, Write as _};
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::schema::{self, KeySpec, Kind};
use super::yaml::{self, Node, SNode, byte_range as range};
use super::{Config, ConfigError, SETTABLE_KEYS, file_and_dir};

/// Set one key of a config file, keeping comments, key order and every other line untouched.
///
/// `key` is one of [`SETTABLE_KEYS`] or the part after its dot (`sync_interval`; `-` may stand
/// for `_`). `value` is written as YAML would read it: `30`, `true`, `auto`, a path (quoted when
/// needed); an empty value removes the setting's value, so the default applies. A key missing
/// from the file is added under its section, and the section is added if missing.
///
/// The edited file is validated first and written only if valid, atomically (temp file in the
/// same directory, then rename), with the file's permissions; a symlink is followed and stays a
/// symlink. A read-only file is refused. Returns the new config.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use sharecache::config::{set_key, ConfigError};
///
/// let dir = tempfile::tempdir()?;
/// let file = dir.path().join("config.yaml");
/// std::fs::write(&file, "database:\n  path: //nas/share/app.db  # the shared db\n")?;
///
/// let config = set_key(&file, "sync_interval", "10")?;
/// assert_eq!(config.sync_interval, Duration::from_secs(10));
/// assert_eq!(
///     std::fs::read_to_string(&file)?,
///     "database:\n  path: //nas/share/app.db  # the shared db\n  sync_interval: 10\n"
/// );
///
/// // An invalid value leaves the file alone.
/// let err = set_key(&file, "sync_interval", "soon").unwrap_err();
/// assert!(matches!(err, ConfigError::InvalidValue { .. }));
/// assert!(std::fs::read_to_string(&file)?.contains("sync_interval: 10"));
/// # Ok(())
/// # }
/// ```
pub fn set_key(path: &Path, key: &str, value: &str) -> Result<Config, ConfigError> {
    let spec = setting(key)?;
    if value.chars().any(char::is_control) {
        return Err(ConfigError::InvalidValue {
            path: path.to_path_buf(),
            key: spec.path.to_owned(),
            message: format!("must be a single line without control characters, got {value:?}"),
        });
    }
    let target = follow_symlink(path);
    let text = fs::read_to_string(&target).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let scalar = yaml::scalar(
        value,
        matches!(spec.kind, Kind::Path { .. } | Kind::Identifier),
    );
    let edited = edit_text(&text, spec, &scalar, path)?;
    let (absolute, base_dir) = file_and_dir(path);
    let mut config = Config::from_yaml_str(&edited, path, &base_dir)?;
    config.source = Some(absolute);
    if edited != text {
        write_atomic(&target, &edited).map_err(|source| ConfigError::Write {
            path: path.to_path_buf(),
            source,
        })?;
        tracing::info!(config = %path.display(), key = spec.path, value, "config changed");
    }
    Ok(config)
}

/// The spec of a settable key, given in full or by its unique part after the dot.
fn setting(key: &str) -> Result<&'static KeySpec, ConfigError> {
    let wanted = key.trim().replace('-', "_");
    let suffix = format!(".{wanted}");
    let matches: Vec<&str> = SETTABLE_KEYS
        .iter()
        .copied()
        .filter(|full| *full == wanted || full.ends_with(&suffix))
        .collect();
    let unknown = |expected: &[&str]| ConfigError::UnknownSetting {
        key: key.to_owned(),
        expected: expected.join(", "),
    };
    match matches.as_slice() {
        [one] => schema::spec(one).ok_or_else(|| unknown(SETTABLE_KEYS)),
        [] => Err(unknown(SETTABLE_KEYS)),
        several => Err(unknown(several)),
    }
}

/// The text of `text` with `spec` set to the YAML scalar `new`.
pub(crate) fn edit_text(
    text: &str,
    spec: &KeySpec,
    new: &str,
    origin: &Path,
) -> Result<String, ConfigError> {
    let edit = Edit {
        text,
        spec,
        new,
        origin,
        eol: if text.contains("\r\n") { "\r\n" } else { "\n" },
    };
    let root = yaml::parse(text).map_err(|_| edit.original_error())?;
    let sections: &[(SNode, SNode)] = match &root.value {
        Node::Map(entries) => entries,
        Node::Null => &[],
        _ => return Err(edit.original_error()),
    };
    let indent = guess_indent(text, sections);
    let Some((section_key, section)) = sections
        .iter()
        .find(|(k, _)| is_key(text, k, spec.section()))
    else {
        return Ok(edit.append_section(&indent));
    };
    if yaml::raw(text, section).is_some_and(|raw| raw.starts_with('*')) {
        return Err(edit.cannot("its section is an alias (`*name`); edit the anchored mapping"));
    }
    match &section.value {
        Node::Map(entries) => match entries.iter().find(|(k, _)| is_key(text, k, spec.name())) {
            Some((key, value)) => edit.replace_value(key, value),
            None => edit.insert_entry(section, entries, &indent),
        },
        Node::Null => edit.fill_empty_section(section_key, section, &indent),
        _ => Err(edit.original_error()),
    }
}

/// Whether `key` is written in the text as `name` (merged `<<` keys point at the alias instead).
fn is_key(text: &str, key: &SNode, name: &str) -> bool {
    let written = yaml::raw(text, key).map(|raw| raw.trim_matches(|c| c == '"' || c == '\''));
    matches!(&key.value, Node::Str(s) if s == name) && written == Some(name)
}

/// The indentation of settings in the file's block sections (two spaces if there are none).
fn guess_indent(text: &str, sections: &[(SNode, SNode)]) -> String {
    let column = sections
        .iter()
        .find_map(|(_, section)| match &section.value {
            Node::Map(entries) => entries
                .iter()
                .find(|(key, _)| is_key(text, key, &yaml::key_name(text, key)))
                .map(|(key, _)| key.referenced.column()),
            _ => None,
        });
    match column {
        Some(column) if column > 1 => " ".repeat((column - 1) as usize),
        _ => "  ".to_owned(),
    }
}

struct Edit<'a> {
    text: &'a str,
    spec: &'a KeySpec,
    new: &'a str,
    origin: &'a Path,
    eol: &'static str,
}

impl Edit<'_> {
    /// The error that loading the unedited file gives.
    fn original_error(&self) -> ConfigError {
        match Config::from_yaml_str(self.text, self.origin, Path::new("")) {
            Err(err) => err,
            Ok(_) => self.cannot("the file has an unexpected shape"),
        }
    }

    fn cannot(&self, why: &str) -> ConfigError {
        ConfigError::Parse {
            path: self.origin.to_path_buf(),
            message: format!(
                "cannot change `{}` in place: {why}; edit the file by hand",
                self.spec.path
            ),
        }
    }

    fn splice(&self, at: Range<usize>, with: &str) -> String {
        [&self.text[..at.start], with, &self.text[at.end..]].concat()
    }

    /// `name: new` as a line of a block section.
    fn entry_line(&self, indent: &str) -> String {
        let sep = if self.new.is_empty() { "" } else { " " };
        format!("{indent}{}:{sep}{}{}", self.spec.name(), self.new, self.eol)
    }

    /// The position of the `:` after a key written as `key:`.
    fn colon_after(&self, key: &SNode) -> Option<usize> {
        let key_end = range(key)?.end;
        let after = &self.text[key_end..];
        let gap = after.len() - after.trim_start_matches([' ', '\t']).len();
        after[gap..].starts_with(':').then_some(key_end + gap)
    }

    /// Where an entry ends in the text: after its value, or after its `:` if it has none.
    fn entry_end(&self, key: &SNode, value: &SNode) -> Option<usize> {
        let value = range(value)?;
        match value.is_empty() {
            true => Some(self.colon_after(key)? + 1),
            false => Some(value.end),
        }
    }

    /// The node properties (`&anchor`, `!tag`) written from `from` on, on the same line: where
    /// they end, the anchors among them, and whether there is a tag.
    fn properties(&self, from: usize) -> (usize, Vec<&str>, bool) {
        let (mut end, mut anchors, mut tagged) = (from, Vec::new(), false);
        loop {
            let rest = &self.text[end..];
            let start = end + (rest.len() - rest.trim_start_matches([' ', '\t']).len());
            let len = self.text[start..]
                .find([' ', '\t', '\r', '\n', ',', '}', ']'])
                .unwrap_or(self.text.len() - start);
            let token = &self.text[start..start + len];
            match token.chars().next() {
                Some('&') => anchors.push(token),
                Some('!') => tagged = true,
                _ => return (end, anchors, tagged),
            }
            end = start + len;
        }
    }

    /// Replace the value of an existing `key: value`.
    fn replace_value(&self, key: &SNode, value: &SNode) -> Result<String, ConfigError> {
        let located = || self.cannot("the parser gave no position for it");
        let colon = self
            .colon_after(key)
            .ok_or_else(|| self.cannot("its key is not written as `key: value`"))?;
        let value = range(value).ok_or_else(located)?;
        // A block scalar (`key: |` + indented lines): replace header and content.
        let before_value = &self.text[colon + 1..value.start.max(colon + 1)];
        let header = before_value.split(['\n', '#']).next().unwrap_or("");
        if let Some(at) = header.find(['|', '>']) {
            // The span runs to where the next key starts; keep the line break(s) before it.
            let start = colon + 1 + at;
            let end = start + self.text[start..value.end].trim_end().len();
            return Ok(self.splice(start..end, self.new));
        }
        // Replace the value only, or everything after the colon: when there is no value to
        // replace, when the value goes, or when a tag would change what the new value means.
        // Anchors stay (aliases may refer to them).
        let (props_end, anchors, tagged) = self.properties(colon + 1);
        let whole =
            value.is_empty() || self.new.is_empty() || tagged && !before_value.contains('\n');
        let (start, end, with) = if whole {
            let parts = anchors
                .into_iter()
                .chain([self.new])
                .filter(|t| !t.is_empty());
            let with: String = parts.map(|t| format!(" {t}")).collect();
            (colon + 1, value.end.max(props_end), with)
        } else {
            (value.start, value.end, self.new.to_owned())
        };
        let old = &self.text[start..end];
        let rest = &self.text[end..];
        let pad = rest.len() - rest.trim_start_matches(' ').len();
        if !old.contains('\n') && pad > 0 && rest[pad..].starts_with('#') {
            // Keep a trailing comment in its column.
            let new_pad = (pad + old.chars().count())
                .saturating_sub(with.chars().count())
                .max(1);
            return Ok(self.splice(start..end + pad, &format!("{with}{}", " ".repeat(new_pad))));
        }
        Ok(self.splice(start..end, &with))
    }

    /// Add `name: new` to a section that has other keys.
    fn insert_entry(
        &self,
        section: &SNode,
        entries: &[(SNode, SNode)],
        indent: &str,
    ) -> Result<String, ConfigError> {
        let own: Vec<_> = entries
            .iter()
            .filter(|(key, _)| is_key(self.text, key, &yaml::key_name(self.text, key)))
            .collect();
        let located = || self.cannot("the parser gave no position for its section");
        let section_range = range(section).ok_or_else(located)?;
        let last_end = own
            .iter()
            .filter_map(|(key, value)| self.entry_end(key, value))
            .max();
        if self.text[section_range.start..].starts_with('{') {
            // Flow style: `sync: {batch_size: 500}`.
            let (at, sep) = match last_end {
                Some(end) => (end, ", "),
                None => (section_range.start + 1, ""),
            };
            let with = format!("{sep}{}: {}", self.spec.name(), self.new);
            return Ok(self.splice(at..at, &with));
        }
        // Indent like the section's keys; a section of only `<<:` merges starts at that key.
        let column = own.first().map_or(section.referenced.column(), |(key, _)| {
            key.referenced.column()
        });
        let indent = match column {
            column if column > 1 => " ".repeat((column - 1) as usize),
            _ => indent.to_owned(),
        };
        let line = self.entry_line(&indent);
        let end = last_end.unwrap_or(section_range.start);
        Ok(self.insert_line_after(end, &line))
    }

    /// Insert a whole line after the line holding byte `at` (at `at` if it starts a line).
    fn insert_line_after(&self, at: usize, line: &str) -> String {
        if at == 0 || self.text[..at].ends_with('\n') {
            return self.splice(at..at, line);
        }
        match self.text[at..].find('\n') {
            Some(i) => self.splice(at + i + 1..at + i + 1, line),
            None => [self.text, self.eol, line].concat(),
        }
    }

    /// Add `name: new` under a section with no keys (`sync:`, `sync: ~`).
    fn fill_empty_section(
        &self,
        section_key: &SNode,
        section: &SNode,
        indent: &str,
    ) -> Result<String, ConfigError> {
        let located = || self.cannot("the parser gave no position for its section");
        let key_end = range(section_key).ok_or_else(located)?.end;
        let null = range(section).ok_or_else(located)?;
        let with_line = Edit {
            text: &self.insert_line_after(key_end, &self.entry_line(indent)),
            ..*self
        };
        // Drop an explicit `~`/`null` and the spaces before it (all before the inserted line).
        if null.start > key_end && !null.is_empty() {
            let start = key_end + self.text[key_end..null.start].trim_end_matches(' ').len();
            return Ok(with_line.splice(start..null.end, ""));
        }
        Ok(with_line.text.to_owned())
    }

    /// Add the whole section at the end of the file.
    fn append_section(&self, indent: &str) -> String {
        let mut out = self.text.to_owned();
        if !out.is_empty() && !out.ends_with('\n') {
            out.push_str(self.eol);
        }
        if !out.trim().is_empty() && !out.ends_with(&format!("{0}{0}", self.eol)) {
            out.push_str(self.eol);
        }
        out.push_str(self.spec.section());
        out.push(':');
        out.push_str(self.eol);
        out.push_str(&self.entry_line(indent));
        out
    }
}

/// The file a path names, through a symlink, so that the link stays a link.
fn follow_symlink(path: &Path) -> PathBuf {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
        }
        _ => path.to_path_buf(),
    }
}

/// Replace `target`'s contents: write a temp file next to it, then rename it over the target.
fn write_atomic(target: &Path, contents: &str) -> io::Result<()> {
    let permissions = fs::metadata(target)?.permissions();
    if permissions.readonly() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "the file is read-only",
        ));
    }
    let dir = match target.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = target
        .file_name()
        .map_or_else(|| "config".into(), |n| n.to_string_lossy());
    let (tmp, mut file) = (0..100)
        .find_map(|n| {
            let tmp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&tmp)
            {
                Ok(file) => Some(Ok((tmp, file))),
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => None,
                Err(err) => Some(Err(err)),
            }
        })
        .unwrap_or_else(|| {
            Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "no free temp name",
            ))
        })?;
    let flushed = file
        .write_all(contents.as_bytes())
        .and_then(|()| file.sync_all());
    drop(file); // closed before the rename: Windows cannot rename an open file
    let written = flushed
        .and_then(|()| fs::set_permissions(&tmp, permissions))
        .and_then(|()| fs::rename(&tmp, target));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written?;
    let _ = crate::platform::sync_dir(dir); // make the rename durable; best effort
    Ok(())
}

#[cfg(test)]
mod tests;
