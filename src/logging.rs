//! Log output on standard error, as logfmt or JSON lines, at the level the flags set.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::cli::{LogFormat, LogLevel};

/// Installs the global subscriber. Libraries log at warn and above only; the exporter at the
/// chosen level.
pub fn init(level: LogLevel, format: LogFormat) {
    let level = match level {
        LogLevel::Error => LevelFilter::ERROR,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Trace => LevelFilter::TRACE,
    };
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::WARN.min(level).into())
        .parse_lossy(format!("docker_image_exporter={level}"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).init(),
        LogFormat::Logfmt => builder.event_format(Logfmt).init(),
    }
}

/// `ts=... level=... msg="..." key=value` lines, the format of the Prometheus exporters.
struct Logfmt;

impl<S, N> FormatEvent<S, N> for Logfmt
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        context: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write!(writer, "ts=")?;
        SystemTime.format_time(&mut writer)?;
        let metadata = event.metadata();
        write!(writer, " level={}", metadata.level().as_str().to_ascii_lowercase())?;
        write!(writer, " target={}", metadata.target())?;

        // The message first, then the event's fields, then those of the spans around it.
        let mut fields = LogfmtFields { writer: &mut writer, result: Ok(()) };
        event.record(&mut fields);
        fields.result?;
        if let Some(scope) = context.event_scope() {
            for span in scope.from_root() {
                write!(writer, " span={}", span.name())?;
            }
        }
        writeln!(writer)
    }
}

struct LogfmtFields<'a, 'w> {
    writer: &'a mut Writer<'w>,
    result: fmt::Result,
}

impl Visit for LogfmtFields<'_, '_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if self.result.is_err() {
            return;
        }
        let key = if field.name() == "message" { "msg" } else { field.name() };
        self.result = write!(self.writer, " {key}={}", Quoted(value));
    }
}

/// A logfmt value: bare when it can be, quoted and escaped otherwise.
struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bare = !self.0.is_empty()
            && !self.0.chars().any(|c| c == ' ' || c == '"' || c == '=' || c.is_control());
        if bare {
            return f.write_str(self.0);
        }
        f.write_str("\"")?;
        for c in self.0.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                c if c.is_control() => write!(f, "\\u{{{:x}}}", c as u32)?,
                c => write!(f, "{c}")?,
            }
        }
        f.write_str("\"")
    }
}

#[cfg(test)]
mod tests {
    use super::Quoted;

    #[test]
    fn values_are_quoted_only_when_needed() {
        assert_eq!(Quoted("plain").to_string(), "plain");
        assert_eq!(Quoted("two words").to_string(), "\"two words\"");
        assert_eq!(Quoted("a=\"b\"\n").to_string(), "\"a=\\\"b\\\"\\n\"");
        assert_eq!(Quoted("").to_string(), "\"\"");
    }
}
