//! An SMS policy: STOP/START opt-out kept in `kv`, spam patterns rejected, numbers rewritten to
//! E.164; the delivery reports of the messages it let through are counted.
//!
//! Build: `cargo build --target wasm32-wasip2 --profile plugin -p sms-policy`
//! Test:  `wasmswitch plugin test target/wasm32-wasip2/plugin/sms_policy.wasm plugins/scenarios/sms-policy.yaml`
//!
//! `kv` keys: `optout/<E.164 number>` (set by STOP, removed by START), `spam-patterns` (one
//! case-insensitive phrase a line, added to the built-in ones) and `default-country` (the calling
//! code for national numbers, default `1`).

use wasmswitch_plugin::*;

struct Plugin;

const STOP: &[&str] = &["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"];
const START: &[&str] = &["START", "UNSTOP", "YES"];
const BUILT_IN_SPAM: &[&str] = &["you have won", "claim your prize", "crypto giveaway"];

/// `+14155550100`, `(415) 555-0100`, `001 415 555 0100` and `4155550100` all become
/// `+14155550100` (with default country 1). Anything that is not a phone number (a short code,
/// an alphanumeric sender) is left alone.
fn e164(number: &str, country: &str) -> String {
    let digits: String = number.chars().filter(char::is_ascii_digit).collect();
    let plus = number.trim_start().starts_with('+');
    let only_number_chars = number
        .chars()
        .all(|c| c.is_ascii_digit() || " +-().".contains(c));
    if !only_number_chars || digits.len() < 7 {
        return number.to_string();
    }
    if plus {
        format!("+{digits}")
    } else if let Some(intl) = digits.strip_prefix("00") {
        format!("+{intl}")
    } else if let Some(national) = digits.strip_prefix('0') {
        format!("+{country}{national}")
    } else if digits.len() > 10 {
        format!("+{digits}")
    } else {
        format!("+{country}{digits}")
    }
}

impl Messaging for Plugin {
    fn on_message(msg: Message) -> SmsDecision {
        let country = kv::get_string("default-country")
            .ok()
            .flatten()
            .unwrap_or_else(|| "1".into());
        let from = e164(&msg.from, country.trim());
        let to = e164(&msg.to, country.trim());
        let keyword = msg.body.trim().to_ascii_uppercase();

        if STOP.contains(&keyword.as_str()) {
            if let Err(e) = kv::set(&format!("optout/{from}"), "1") {
                // Not recording an opt-out is worse than failing the message: let it be retried.
                log::error(&format!("cannot record opt-out of {from}: {e:?}"));
                return SmsDecision::reject(503, "Try Again Later");
            }
            metrics::incr("opt_out");
            return SmsDecision::Reply(
                "You have been unsubscribed. Reply START to resubscribe.".into(),
            );
        }
        if START.contains(&keyword.as_str()) {
            let _ = kv::delete(&format!("optout/{from}"));
            metrics::incr("opt_in");
            return SmsDecision::Reply("You have been resubscribed.".into());
        }
        if matches!(kv::get(&format!("optout/{to}")), Ok(Some(_))) {
            log::info(&format!("{to} has opted out; message {} refused", msg.id));
            return SmsDecision::reject(403, "Recipient Opted Out");
        }
        let body = msg.body.to_lowercase();
        let extra = kv::get_string("spam-patterns")
            .ok()
            .flatten()
            .unwrap_or_default();
        let spam = BUILT_IN_SPAM
            .iter()
            .copied()
            .chain(extra.lines().map(str::trim).filter(|l| !l.is_empty()))
            .find(|p| body.contains(&p.to_lowercase()));
        if let Some(pattern) = spam {
            log::warn(&format!(
                "message {} matches spam pattern {pattern:?}",
                msg.id
            ));
            metrics::incr("spam");
            return SmsDecision::reject(403, "Rejected As Spam");
        }
        if from != msg.from || to != msg.to {
            return SmsDecision::Rewrite(Rewrite {
                from: (from != msg.from).then_some(from),
                to: (to != msg.to).then_some(to),
                body: None,
            });
        }
        SmsDecision::Deliver
    }

    fn on_delivery(report: DeliveryReport) {
        match report.status {
            DeliveryStatus::Delivered(_) => metrics::incr("delivered"),
            DeliveryStatus::Failed(status) => {
                let what = if report.reply { "reply" } else { "message" };
                log::warn(&format!(
                    "{what} {} to {} not delivered: {}",
                    report.id, report.to, status.code
                ));
                metrics::incr("delivery_failed");
            }
        }
    }
}

export_messaging!(Plugin);
