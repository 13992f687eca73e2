//! The one place where text becomes SQL. Every identifier and literal that upmarket puts into
//! generated SQL goes through [`quote_ident`] or [`quote_literal`].

/// Quotes an SQL identifier: wraps it in double quotes and doubles any double quote inside,
/// so that no name, however hostile, can end the identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('\0', "").replace('"', "\"\""))
}

/// Quotes an SQL string literal: wraps it in single quotes and doubles any single quote inside.
/// NUL bytes are dropped (DuckDB rejects them in literals).
pub fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\0', "").replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_stay_inside_their_quotes() {
        assert_eq!(quote_ident("plain"), "\"plain\"");
        assert_eq!(
            quote_ident("a\"; DROP TABLE events; --"),
            "\"a\"\"; DROP TABLE events; --\""
        );
        assert_eq!(
            quote_literal("o'brien'); DELETE FROM users; --"),
            "'o''brien''); DELETE FROM users; --'"
        );
        assert_eq!(quote_literal("nul\0byte"), "'nulbyte'");
    }
}
