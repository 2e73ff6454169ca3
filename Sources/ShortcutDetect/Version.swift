/// The package's version, following semantic versioning; `shortcut-detect --version` prints it.
///
/// Bump it with every release and add the matching section to `CHANGELOG.md`.
public let shortcutDetectVersion = "0.6.0"
