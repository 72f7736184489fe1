//! `register`: bulk test accounts over in-band registration (XEP-0077), one connection
//! per account and a bounded number in flight, for servers whose own tools start one
//! process per account (ejabberdctl, prosodyctl). An account that already exists counts
//! as done, so the command can be rerun. Plaintext or direct TLS only (no STARTTLS).

use crate::cli::{RegisterArgs, Transport};
use crate::client::{next_frame, stream_end, stream_header, write, Connector, Stream};
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchyard_core::{Element, Frame, Framer, Limits};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

const REGISTER_NS: &str = "jabber:iq:register";

pub async fn run(args: RegisterArgs) -> anyhow::Result<usize> {
    anyhow::ensure!(
        args.target.transport != Transport::Starttls,
        "register supports --transport plain or tls"
    );
    let users = args.target.accounts.users;
    let connector = Arc::new(Connector::new(args.target)?);
    let permits = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for i in 0..users {
        let permit = permits.clone().acquire_owned().await?;
        let connector = connector.clone();
        tasks.spawn(async move {
            let limit = Duration::from_secs(connector.target.login_timeout_secs);
            let result = tokio::time::timeout(limit, register(&connector, i)).await;
            drop(permit);
            result.unwrap_or_else(|_| Err("timeout".into()))
        });
    }
    let mut failures = std::collections::BTreeMap::<String, usize>::new();
    let mut ok = 0;
    while let Some(result) = tasks.join_next().await {
        match result? {
            Ok(()) => ok += 1,
            Err(kind) => *failures.entry(kind).or_default() += 1,
        }
    }
    eprintln!(
        "{ok} of {users} accounts registered or present in {:.1} s; failures {failures:?}",
        started.elapsed().as_secs_f64()
    );
    anyhow::ensure!(failures.is_empty(), "some registrations failed");
    Ok(ok)
}

async fn register(connector: &Connector, i: usize) -> Result<(), String> {
    let t = &connector.target;
    let tcp = connector.tcp(i).await.map_err(|_| "connect".to_owned())?;
    let mut stream = match t.transport {
        Transport::Tls => connector.tls_stream(tcp).await?,
        _ => Stream::Plain(tcp),
    };
    let mut framer = Framer::new(Limits::default());
    let mut buf = [0u8; 4096];
    write(&mut stream, stream_header(&t.accounts.domain).as_bytes()).await?;
    let query = Element::new("query", REGISTER_NS)
        .with_child(Element::new("username", REGISTER_NS).with_text(t.accounts.username(i)))
        .with_child(Element::new("password", REGISTER_NS).with_text(t.accounts.password.clone()));
    let iq = Element::new("iq", "jabber:client")
        .with_attr("type", "set")
        .with_attr("id", "reg")
        .with_child(query);
    loop {
        match stream_end(next_frame(&mut stream, &mut framer, &mut buf).await?)? {
            Frame::Stanza(el, _) if el.name() == "features" => {
                write(&mut stream, iq.to_xml("jabber:client").as_bytes()).await?;
            }
            Frame::Stanza(el, _) if el.attr("id") == Some("reg") => {
                let _ = write(&mut stream, b"</stream:stream>").await;
                let conflict = el
                    .child("error", "jabber:client")
                    .and_then(|e| e.children().next())
                    .is_some_and(|c| c.name() == "conflict");
                return match el.attr("type") {
                    Some("result") => Ok(()),
                    _ if conflict => Ok(()),
                    _ => Err("registration-refused".into()),
                };
            }
            _ => {}
        }
    }
}
