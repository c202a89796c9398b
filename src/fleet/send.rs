//! A population's `send = { paths, every, jitter, format }`, checked.

use std::time::Duration;

use toml::Spanned;

use super::raw::RawSend;
use super::span::{At, invalid};
use super::{FleetError, Group, format_duration, parse_duration};
use crate::client::{LwM2mVersion, SendConfig};
use crate::content::ContentFormat;
use crate::model::{DeviceTemplate, Path};

/// The checked Send settings, or `None` without a `send` table. `population` locates errors
/// that concern the table as a whole (on the `send` key).
pub(super) fn send(
    raw: Option<&Spanned<RawSend>>,
    version: LwM2mVersion,
    population: &At,
    file: &str,
    text: &str,
) -> Result<Option<SendConfig>, FleetError> {
    let Some(table) = raw else {
        return Ok(None);
    };
    if version < LwM2mVersion::V1_1 {
        return Err(population.err(
            "send",
            format!(
                "Send is LwM2M 1.1 and later: this population announces lwm2m {}",
                version.as_str()
            ),
        ));
    }
    let at = At {
        file,
        text,
        span: table.span(),
    };
    let raw = table.get_ref();
    let paths = raw.paths.as_deref().unwrap_or_default();
    if paths.is_empty() {
        return Err(at.err_as(
            "paths",
            "send.paths",
            "list at least one path, e.g. [\"/3303/0/5700\"]",
        ));
    }
    let paths = paths
        .iter()
        .map(|p| {
            p.parse::<Path>()
                .ok()
                .filter(|path| !path.is_root())
                .ok_or_else(|| {
                    at.err_as(
                        "paths",
                        "send.paths",
                        format!("{p:?}: expected a path like /3303/0/5700"),
                    )
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let duration = |key: &str, v: &Option<String>| {
        v.as_deref()
            .map(|t| parse_duration(t).map_err(|e| at.err_as(key, &field(key), e.to_string())))
            .transpose()
    };
    let every = duration("every", &raw.every)?
        .filter(|e| !e.is_zero())
        .ok_or_else(|| {
            at.err_as(
                "every",
                "send.every",
                "give how often to Send, e.g. \"15m\"",
            )
        })?;
    let jitter = duration("jitter", &raw.jitter)?.unwrap_or(Duration::ZERO);
    if jitter >= every {
        return Err(at.err_as("jitter", "send.jitter", "must be less than send.every"));
    }
    let format = match raw.format.as_deref() {
        None | Some("senml-cbor") => ContentFormat::SenmlCbor,
        Some("senml-json") => ContentFormat::SenmlJson,
        Some(other) => {
            return Err(at.err_as(
                "format",
                "send.format",
                format!("{other:?}: expected \"senml-cbor\" or \"senml-json\""),
            ));
        }
    };
    Ok(Some(SendConfig {
        paths,
        every,
        jitter,
        format,
    }))
}

fn field(key: &str) -> String {
    format!("send.{key}")
}

/// Every Send path names an object, instance or readable resource the group's template has.
pub(super) fn check_paths(
    file: &str,
    line: usize,
    group: &Group,
    template: &DeviceTemplate,
) -> Result<(), FleetError> {
    let Some(send) = &group.config.send else {
        return Ok(());
    };
    for path in &send.paths {
        let ids = path.ids();
        let missing = |what: String| {
            invalid(
                file,
                line,
                "send.paths",
                format!("{path}: template {:?} has no {what}", group.template),
            )
        };
        let Some(object) = template.object(ids[0]) else {
            return Err(missing(format!("object {}", ids[0])));
        };
        if let Some(&i) = ids.get(1)
            && object.instance(i).is_none()
        {
            return Err(missing(format!("instance /{}/{i}", ids[0])));
        }
        if let Some(&r) = ids.get(2) {
            match object.def.resource(r) {
                None => return Err(missing(format!("resource {r} in object {}", ids[0]))),
                Some(def) if !def.operations.read => {
                    return Err(invalid(
                        file,
                        line,
                        "send.paths",
                        format!("{path}: resource {r} is not readable"),
                    ));
                }
                Some(_) => {}
            }
        }
    }
    Ok(())
}

/// One line for `check`: what is sent, how often, in which format.
pub(super) fn describe(send: &SendConfig) -> String {
    let paths: Vec<String> = send.paths.iter().map(Path::to_string).collect();
    let jitter = if send.jitter.is_zero() {
        String::new()
    } else {
        format!(" ± {}", format_duration(send.jitter))
    };
    let format = match send.format {
        ContentFormat::SenmlJson => "senml-json",
        _ => "senml-cbor",
    };
    format!(
        "send {} every {}{jitter} as {format}",
        paths.join(", "),
        format_duration(send.every)
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::content::ContentFormat;
    use crate::fleet::{Fleet, FleetError};
    use crate::model::Path;
    use crate::toml_span::Located;

    /// One 1.1 population whose `send = {...}` line is line 5, then `extra` lines.
    fn fleet_with(send: &str, extra: &str) -> Result<Fleet, FleetError> {
        let text = format!(
            "[[population]]\nname = \"a\"\nshare = 1.0\ntemplate = \"smart-meter\"\n\
             send = {send}\n{extra}[load]\nclients = 5\nrate = 1\nhold = \"1m\"\n"
        );
        Fleet::from_toml(&text, "t.toml")
    }

    fn error(send: &str, extra: &str) -> (usize, String, String) {
        crate::fleet::tests::located(fleet_with(send, extra))
    }

    #[test]
    fn a_send_table_becomes_the_populations_send_config() {
        let fleet = fleet_with(
            r#"{ paths = ["/3303/0/5700", "/3/0"], every = "15m", jitter = "1m", format = "senml-json" }"#,
            "",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let send = fleet.groups[0].config.send.clone().expect("send config");
        assert_eq!(
            send.paths,
            vec![Path::resource(3303, 0, 5700), "/3/0".parse().unwrap()]
        );
        assert_eq!(send.every, Duration::from_secs(900));
        assert_eq!(send.jitter, Duration::from_secs(60));
        assert_eq!(send.format, ContentFormat::SenmlJson);
        let default = fleet_with(r#"{ paths = ["/3/0/0"], every = "1m" }"#, "").unwrap();
        let send = default.groups[0].config.send.clone().unwrap();
        assert_eq!(send.format, ContentFormat::SenmlCbor, "CBOR by default");
        assert_eq!(send.jitter, Duration::ZERO);
    }

    #[test]
    fn bad_send_tables_name_the_field_and_line() {
        let every = r#"every = "1m""#;
        let cases = [
            (
                format!("{{ paths = [], {every} }}"),
                "send.paths",
                "at least one",
            ),
            (
                format!("{{ paths = [\"/x/0\"], {every} }}"),
                "send.paths",
                "\"/x/0\"",
            ),
            (
                r#"{ paths = ["/3/0/0"] }"#.to_string(),
                "send.every",
                "how often",
            ),
            (
                r#"{ paths = ["/3/0/0"], every = "soon" }"#.to_string(),
                "send.every",
                "soon",
            ),
            (
                format!("{{ paths = [\"/3/0/0\"], {every}, jitter = \"1m\" }}"),
                "send.jitter",
                "less than",
            ),
            (
                format!("{{ paths = [\"/3/0/0\"], {every}, format = \"tlv\" }}"),
                "send.format",
                "senml-cbor",
            ),
        ];
        for (table, field, words) in cases {
            let (line, named, message) = error(&table, "");
            assert_eq!((line, named.as_str()), (5, field), "{table}: {message}");
            assert!(message.contains(words), "{table}: {message}");
        }
        let (line, field, _) = error(r#"{ paths = ["/3/0/0"], oops = 1 }"#, "");
        assert_eq!((line, field.as_str()), (5, "oops"));
    }

    #[test]
    fn send_paths_must_be_in_the_template() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("object-templates");
        let templates = crate::model::TemplateSet::load_dir(&dir).expect("shipped templates");
        let check = |paths: &str| {
            let table = format!("{{ paths = {paths}, every = \"1m\" }}");
            let fleet = fleet_with(&table, "").unwrap_or_else(|e| panic!("{e}"));
            fleet.check(&templates).map(|_| ())
        };
        check(r#"["/3/0/0", "/3/0", "/1"]"#).unwrap_or_else(|e| panic!("{e}"));
        for (paths, says) in [
            (
                r#"["/3/0/0", "/3/0/4"]"#,
                "/3/0/4: resource 4 is not readable",
            ),
            (r#"["/3/0/9999"]"#, "no resource 9999 in object 3"),
            (r#"["/3/7"]"#, "no instance /3/7"),
            (r#"["/3442"]"#, "no object 3442"),
        ] {
            match check(paths) {
                Err(FleetError::Invalid(Located {
                    line,
                    field,
                    message,
                    ..
                })) => {
                    assert_eq!((line, field.as_str()), (5, "send.paths"), "{paths}");
                    assert!(message.contains(says), "{paths}: {message}");
                }
                other => panic!("{paths}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_lwm2m_1_0_population_cannot_send() {
        let (line, field, message) = error(
            r#"{ paths = ["/3/0/0"], every = "1m" }"#,
            "client = { lwm2m = \"1.0\" }\n",
        );
        assert_eq!((line, field.as_str()), (5, "send"));
        assert!(message.contains("1.1"), "{message}");
    }
}
