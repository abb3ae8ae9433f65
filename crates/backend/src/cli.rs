use std::ffi::OsStr;

use clap::builder::{PossibleValue, TypedValueParser, ValueParserFactory};
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Arg, Command};

use crate::Backend;

/// clap value parser for [`Backend`]: `#[arg(long, env = "RNN_BACKEND")] backend: Option<Backend>`
/// just works, lists the compiled-in backends in `--help`, and rejects others with
/// [`crate::BackendError`]'s message.
#[derive(Debug, Clone, Copy, Default)]
pub struct BackendParser;

impl TypedValueParser for BackendParser {
    type Value = Backend;

    fn parse_ref(
        &self,
        cmd: &Command,
        arg: Option<&Arg>,
        value: &OsStr,
    ) -> Result<Backend, clap::Error> {
        let text = value.to_string_lossy();
        text.parse::<Backend>().map_err(|e| {
            let mut err = clap::Error::new(ErrorKind::InvalidValue).with_cmd(cmd);
            if let Some(arg) = arg {
                err.insert(
                    ContextKind::InvalidArg,
                    ContextValue::String(arg.to_string()),
                );
            }
            err.insert(
                ContextKind::InvalidValue,
                ContextValue::String(text.into_owned()),
            );
            err.insert(
                ContextKind::ValidValue,
                ContextValue::Strings(
                    Backend::compiled_names()
                        .into_iter()
                        .map(String::from)
                        .collect(),
                ),
            );
            err.insert(
                ContextKind::Suggested,
                ContextValue::StyledStrs(vec![e.to_string().into()]),
            );
            err
        })
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(
            Backend::compiled()
                .into_iter()
                .map(|b| PossibleValue::new(b.name())),
        ))
    }
}

impl ValueParserFactory for Backend {
    type Parser = BackendParser;

    fn value_parser() -> BackendParser {
        BackendParser
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser, Debug)]
    struct Cli {
        /// Backend to run on.
        #[arg(long)]
        backend: Option<Backend>,
    }

    #[test]
    fn parses_a_compiled_backend() {
        for b in Backend::compiled() {
            let cli = Cli::try_parse_from(["x", "--backend", &b.name().to_uppercase()]).unwrap();
            assert_eq!(cli.backend, Some(b));
        }
    }

    #[test]
    fn bad_name_is_a_usage_error_listing_backends() {
        let err = Cli::try_parse_from(["x", "--backend", "nope"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidValue);
        assert_eq!(err.exit_code(), 2);
        let msg = err.to_string();
        assert!(msg.contains("nope"), "{msg}");
        for name in Backend::compiled_names() {
            assert!(msg.contains(name), "{msg} should list {name}");
        }
    }
}
