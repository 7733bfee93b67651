//! `leasehold-redis` against a real `redis-server` that each test starts on
//! a free loopback port: commands and pipelines, blocking and async (tokio
//! multi-thread and current-thread), AUTH with the right and the wrong
//! password, ACL users, database isolation, RESP3, TLS, a server restart,
//! requests cut short (async cancellation, a socket timeout), commands
//! that leave session state, many tasks at once, and no connection left
//! leased at the end of any of them.
//!
//! Without `redis-server` on `PATH`, each test says "skipped: redis-server
//! not installed" and passes.

#![cfg(target_os = "linux")]

use leasehold::{Pool, TcpConnector};
use leasehold_redis::{RedisConnector, RedisPool, RedisRoute};
use leasehold_testkit::redis_server::RedisProcess;
use redis::{ProtocolVersion, Value};
use std::io;
use std::time::{Duration, Instant};

/// Far longer than anything here should take.
const PATIENCE: Duration = Duration::from_secs(20);

/// Both runtime flavours, each with I/O and timers.
fn runtimes() -> [(&'static str, tokio::runtime::Runtime); 2] {
    [
        (
            "multi-thread",
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap(),
        ),
        (
            "current-thread",
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        ),
    ]
}

/// Polls `probe` every 5 ms until it holds, for what happens in another
/// process or on the pool's event loop; panics with `what` after
/// [`PATIENCE`].
fn eventually(what: &str, mut probe: impl FnMut() -> bool) {
    let start = Instant::now();
    while !probe() {
        assert!(start.elapsed() < PATIENCE, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Every lease of `pool` is back.
fn nothing_leased<P: leasehold::Policy>(pool: &RedisPool<P>) {
    let total = pool.pool().stats().total;
    assert_eq!(total.leased, 0, "{total:?}");
}

/// Whether a command's error is the connection's refusal to take a
/// request after an earlier one was cut short.
fn refused_after_a_cut(err: &redis::RedisError) -> bool {
    err.kind() == redis::ErrorKind::Io && err.to_string().contains("cut short")
}

#[test]
fn blocking_commands_and_the_connection_goes_back() {
    use redis::Commands;
    let Some(server) = RedisProcess::start() else {
        return;
    };
    let pool = RedisPool::open(&server.url("/0")).unwrap();
    {
        let mut conn = pool.get().unwrap();
        let () = conn.set("greeting", "hello").unwrap();
        let greeting: String = redis::cmd("GET").arg("greeting").query(&mut conn).unwrap();
        assert_eq!(greeting, "hello");
        let missing: Option<String> = conn.get("missing").unwrap();
        assert_eq!(missing, None);
        let value = vec![7u8; 100_000];
        let () = conn.set("big", &value).unwrap();
        let back: Vec<u8> = conn.get("big").unwrap();
        assert_eq!(back, value, "a reply larger than the read buffer");
        // A server error is an answer, not a broken connection.
        let err = redis::cmd("INCR")
            .arg("greeting")
            .query::<i64>(&mut conn)
            .unwrap_err();
        assert_eq!(err.code(), Some("ERR"), "{err}");
        assert!(redis::ConnectionLike::is_open(&*conn));
    }
    let stats = pool.pool().route_stats(pool.route());
    assert_eq!((stats.leased, stats.idle, stats.created), (0, 1, 1));
    // The same connection serves the next lease.
    let mut conn = pool.get().unwrap();
    let greeting: String = conn.get("greeting").unwrap();
    assert_eq!(greeting, "hello");
    assert_eq!(pool.pool().route_stats(pool.route()).created, 1);
    drop(conn);
    assert_eq!(pool.pool().health().broken, 0);
    nothing_leased(&pool);
}

#[test]
fn async_commands_on_both_runtimes() {
    use redis::AsyncCommands;
    let Some(server) = RedisProcess::start() else {
        return;
    };
    let pool = RedisPool::open(&server.url("")).unwrap();
    for (flavour, runtime) in runtimes() {
        runtime.block_on(async {
            let mut conn = pool.get_async().await.unwrap();
            let key = format!("async-{flavour}");
            let () = conn.set(&key, flavour).await.unwrap();
            let back: String = redis::cmd("GET")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap();
            assert_eq!(back, flavour);
            drop(conn);
            // An owned lease moves into a spawned task.
            let mut owned = pool.get_owned_async().await.unwrap();
            let task = tokio::spawn(async move {
                let n: i64 = owned.incr("counter", 1).await.unwrap();
                n
            });
            assert!(task.await.unwrap() >= 1, "{flavour}");
        });
        nothing_leased(&pool);
    }
    // One connection served both runtimes, one after the other.
    let stats = pool.pool().route_stats(pool.route());
    assert_eq!((stats.created, stats.idle), (1, 1), "{stats:?}");
}

#[test]
fn a_connection_used_async_then_blocking_still_works() {
    let Some(server) = RedisProcess::start() else {
        return;
    };
    let pool = RedisPool::open(&server.url("")).unwrap();
    let (_, runtime) = runtimes().into_iter().nth(1).unwrap();
    runtime.block_on(async {
        use redis::AsyncCommands;
        let mut conn = pool.get_async().await.unwrap();
        let () = conn.set("mode", "async").await.unwrap();
    });
    {
        use redis::Commands;
        // The socket is non-blocking now; blocking calls wait for readiness.
        let mut conn = pool.get().unwrap();
        let mode: String = conn.get("mode").unwrap();
        assert_eq!(mode, "async");
        let value = vec![1u8; 1 << 20];
        let () = conn.set("big", &value).unwrap();
        let back: Vec<u8> = conn.get("big").unwrap();
        assert_eq!(back.len(), value.len());
    }
    assert_eq!(pool.pool().route_stats(pool.route()).created, 1);
    nothing_leased(&pool);
}

#[test]
fn pipelines_and_transactions() {
    use redis::Commands;
    let Some(server) = RedisProcess::start() else {
        return;
    };
    let pool = RedisPool::open(&server.url("")).unwrap();
    let mut conn = pool.get().unwrap();
    let (a, b): (i64, String) = redis::pipe()
        .set("a", 1)
        .ignore()
        .set("b", "two")
        .ignore()
        .incr("a", 41)
        .get("b")
        .query(&mut conn)
        .unwrap();
    assert_eq!((a, b.as_str()), (42, "two"));
    let (n,): (i64,) = redis::pipe()
        .atomic()
        .incr("a", 1)
        .ignore()
        .get("a")
        .query(&mut conn)
        .unwrap();
    assert_eq!(n, 43);
    // A command the server refuses to queue aborts the transaction; the
    // connection stays in step.
    let err = redis::pipe()
        .atomic()
        .cmd("SET")
        .arg("only-a-key")
        .get("a")
        .query::<Value>(&mut conn)
        .unwrap_err();
    assert!(err.to_string().contains("wrong number"), "{err}");
    let a: i64 = conn.get("a").unwrap();
    assert_eq!(a, 43);
    drop(conn);

    let (_, runtime) = runtimes().into_iter().next().unwrap();
    runtime.block_on(async {
        let mut conn = pool.get_async().await.unwrap();
        let values: Vec<i64> = (0..100)
            .fold(&mut redis::pipe(), |pipe, i| {
                pipe.set(format!("k{i}"), i).ignore().get(format!("k{i}"))
            })
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(values, (0..100).collect::<Vec<_>>());
        let (n,): (i64,) = redis::pipe()
            .atomic()
            .incr("a", 1)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(n, 44);
    });
    // Every request completed: the one connection is idle, never broken.
    let stats = pool.pool().route_stats(pool.route());
    assert_eq!((stats.created, stats.idle), (1, 1), "{stats:?}");
    assert_eq!(pool.pool().health().broken, 0);
}

#[test]
fn auth_with_the_right_password_and_an_acl_user() {
    use redis::Commands;
    let Some(server) = RedisProcess::with_args(&[
        "--requirepass",
        "s3cret",
        "--user",
        "app",
        "on",
        ">app-pass",
        "~app:*",
        "+@all",
    ]) else {
        return;
    };
    let pool = RedisPool::open(&server.url_as(":s3cret", "/0")).unwrap();
    let mut conn = pool.get().unwrap();
    let () = conn.set("k", "v").unwrap();
    let whoami: String = redis::cmd("ACL").arg("WHOAMI").query(&mut conn).unwrap();
    assert_eq!(whoami, "default");
    drop(conn);

    let app = RedisPool::open(&server.url_as("app:app-pass", "")).unwrap();
    let mut conn = app.get().unwrap();
    let whoami: String = redis::cmd("ACL").arg("WHOAMI").query(&mut conn).unwrap();
    assert_eq!(whoami, "app");
    let () = conn.set("app:k", 1).unwrap();
    // The user may not touch other keys: an answer, not a failure.
    let err = conn.get::<_, String>("k").unwrap_err();
    assert_eq!(err.code(), Some("NOPERM"), "{err}");
    drop(conn);
    nothing_leased(&pool);
    nothing_leased(&app);
    assert_eq!(app.pool().health().broken, 0);
}

#[test]
fn a_wrong_password_fails_fast_with_the_servers_reason() {
    let Some(server) = RedisProcess::with_args(&["--requirepass", "s3cret"]) else {
        return;
    };
    for (userinfo, path, says) in [
        (":wrong", "", "WRONGPASS"),
        ("nobody:wrong", "", "WRONGPASS"),
        // No password, and a database to select: refused with NOAUTH.
        ("", "/1", "NOAUTH"),
    ] {
        let url = if userinfo.is_empty() {
            server.url(path)
        } else {
            server.url_as(userinfo, path)
        };
        // The acquire timeout is the default 30 s: failing within it, let
        // alone at once, takes the refusal reaching the waiting request.
        let pool = RedisPool::open(&url).unwrap();
        let started = Instant::now();
        let err = pool.get().unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5), "{url}: slow");
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied, "{url}: {err}");
        assert!(err.to_string().contains(says), "{url}: {err}");
        assert!(
            !err.to_string().contains("wrong@"),
            "the password shows: {err}"
        );
        let as_redis = redis::RedisError::from(err);
        assert_eq!(as_redis.kind(), redis::ErrorKind::AuthenticationFailed);
        assert!(as_redis.to_string().contains(says), "{as_redis}");
        let (_, runtime) = runtimes().into_iter().nth(1).unwrap();
        let err = runtime.block_on(pool.get_async()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        nothing_leased(&pool);
    }
}

#[test]
fn databases_stay_apart() {
    use redis::Commands;
    let Some(server) = RedisProcess::start() else {
        return;
    };
    let base = RedisRoute::parse(&server.url("")).unwrap();
    let pool = Pool::builder(RedisConnector::new())
        .max_per_route(2)
        .build()
        .unwrap();
    let routes: Vec<RedisRoute> = (1..=3).map(|db| base.clone().with_db(db)).collect();
    for round in 0..3 {
        for (i, route) in routes.iter().enumerate() {
            let mut conn = pool.lease(route).unwrap();
            assert_eq!(redis::ConnectionLike::get_db(&*conn), route.db());
            if round == 0 {
                let () = conn.set("which", i).unwrap();
            }
            let which: usize = conn.get("which").unwrap();
            assert_eq!(which, i, "db {}", route.db());
        }
    }
    let mut direct = server.direct("");
    let db0: Option<usize> = direct.get("which").unwrap();
    assert_eq!(db0, None, "database 0 untouched");
    // A holder that switches databases does not pass the switch on.
    let mut conn = pool.lease(&routes[0]).unwrap();
    redis::cmd("SELECT").arg(0).exec(&mut *conn).unwrap();
    drop(conn);
    assert_eq!(pool.health().broken, 1);
    let mut conn = pool.lease(&routes[0]).unwrap();
    let which: usize = conn.get("which").unwrap();
    assert_eq!(which, 0);
    drop(conn);
    // A database the server does not have fails the connect.
    let err = pool.lease(&base.clone().with_db(1000)).unwrap_err();
    let err = io::Error::from(err);
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("SELECT 1000"), "{err}");
    assert_eq!(pool.stats().total.leased, 0);
}

#[test]
fn resp3_replies() {
    use redis::Commands;
    let Some(server) = RedisProcess::start() else {
        return;
    };
    let pool = RedisPool::open(&server.url("?protocol=resp3")).unwrap();
    assert_eq!(pool.route().protocol(), ProtocolVersion::RESP3);
    let mut conn = pool.get().unwrap();
    let () = conn.hset_multiple("h", &[("a", 1), ("b", 2)]).unwrap();
    let map: Value = redis::cmd("HGETALL").arg("h").query(&mut conn).unwrap();
    assert!(
        matches!(&map, Value::Map(pairs) if pairs.len() == 2),
        "{map:?}"
    );
    let all: std::collections::HashMap<String, i64> = conn.hgetall("h").unwrap();
    assert_eq!(all["b"], 2);
    let hello: Value = redis::cmd("HELLO").query(&mut conn).unwrap();
    assert!(format!("{hello:?}").contains("proto"), "{hello:?}");
    drop(conn);
    // HELLO changes the session: that connection was closed.
    assert_eq!(pool.pool().health().broken, 1);
    nothing_leased(&pool);
}

#[test]
fn a_server_restart_evicts_the_idle_connections_and_the_pool_recovers() {
    use redis::Commands;
    let Some(mut server) = RedisProcess::start() else {
        return;
    };
    let pool = RedisPool::build(&server.url(""), |pool| {
        pool.max_per_route(4)
            .connect_timeout(Duration::from_secs(2))
            .acquire_timeout(Duration::from_secs(2))
    })
    .unwrap();
    let leases: Vec<_> = (0..3).map(|_| pool.get().unwrap()).collect();
    drop(leases);
    assert_eq!(pool.pool().route_stats(pool.route()).idle, 3);

    server.kill();
    // The event loop counts each eviction once it has taken the
    // connection out of the idle ones.
    eventually("the idle connections are evicted", || {
        pool.pool().health().stale == 3
    });
    assert_eq!(pool.pool().route_stats(pool.route()).idle, 0);
    let err = pool.get().unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");

    server.restart();
    let mut attempts = 0;
    let mut conn = loop {
        attempts += 1;
        // The route rests between probe connects after the refusals.
        match pool.get() {
            Ok(conn) => break conn,
            Err(e) => {
                assert!(attempts < 4000, "never recovered: {e}");
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    };
    let () = conn.set("after", "restart").unwrap();
    let back: String = conn.get("after").unwrap();
    assert_eq!(back, "restart");
    drop(conn);
    assert_eq!(pool.pool().health().broken, 0);
    nothing_leased(&pool);
}

#[test]
fn a_cancelled_async_request_does_not_pass_its_reply_to_the_next_lease() {
    use redis::AsyncCommands;
    // DEBUG SLEEP: a reply that takes a known while.
    let Some(server) = RedisProcess::with_args(&["--enable-debug-command", "yes"]) else {
        return;
    };
    for (flavour, runtime) in runtimes() {
        let pool = RedisPool::build(&server.url(""), |pool| pool.max_per_route(1)).unwrap();
        runtime.block_on(async {
            let mut conn = pool.get_async().await.unwrap();
            let () = conn.set("key", "value").await.unwrap();
            let () = conn.del("list").await.unwrap();
            drop(conn);

            // A slow command, given up on before its reply.
            let mut conn = pool.get_async().await.unwrap();
            let mut sleep = redis::cmd("DEBUG");
            sleep.arg("SLEEP").arg(0.2);
            let slow = sleep.query_async::<()>(&mut conn);
            let cut = tokio::time::timeout(Duration::from_millis(20), slow).await;
            assert!(cut.is_err(), "{flavour}: DEBUG SLEEP answered early");
            // The holder who tries again gets an error, not that reply.
            let err = conn.get::<_, String>("key").await.unwrap_err();
            assert!(refused_after_a_cut(&err), "{err}");
            drop(conn);

            // A blocking pop, given up on: its late `nil` must not surface.
            let mut conn = pool.get_async().await.unwrap();
            let pop = conn.blpop::<_, Option<(String, String)>>("list", 0.3);
            assert!(tokio::time::timeout(Duration::from_millis(20), pop)
                .await
                .is_err());
            drop(conn);

            // The next lease gets a fresh connection and the right replies.
            let mut conn = pool.get_async().await.unwrap();
            for _ in 0..3 {
                let value: String = conn.get("key").await.unwrap();
                assert_eq!(value, "value", "{flavour}");
            }
        });
        assert_eq!(pool.pool().health().broken, 2, "{flavour}");
        let stats = pool.pool().route_stats(pool.route());
        assert_eq!((stats.leased, stats.idle), (0, 1), "{flavour}: {stats:?}");
    }
}

#[test]
fn a_cancelled_request_on_the_multi_thread_runtime_too() {
    use redis::AsyncCommands;
    // DEBUG SLEEP: a reply that takes a known while.
    let Some(server) = RedisProcess::with_args(&["--enable-debug-command", "yes"]) else {
        return;
    };
    let pool = RedisPool::build(&server.url(""), |pool| pool.max_per_route(1)).unwrap();
    let (_, runtime) = runtimes().into_iter().next().unwrap();
    runtime.block_on(async {
        let mut conn = pool.get_async().await.unwrap();
        let () = conn.set("key", "value").await.unwrap();
        drop(conn);
        let mut conn = pool.get_owned_async().await.unwrap();
        let slow = tokio::spawn(async move {
            let _: redis::RedisResult<()> = redis::cmd("DEBUG")
                .arg("SLEEP")
                .arg(0.2)
                .query_async(&mut conn)
                .await;
            unreachable!("aborted before the reply");
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        slow.abort();
        assert!(slow.await.unwrap_err().is_cancelled());
        let mut conn = pool.get_async().await.unwrap();
        let value: String = conn.get("key").await.unwrap();
        assert_eq!(value, "value");
    });
    assert_eq!(pool.pool().health().broken, 1);
    nothing_leased(&pool);
}

#[test]
fn a_blocking_call_past_the_socket_timeout_closes_its_connection() {
    use redis::Commands;
    let Some(server) = RedisProcess::start() else {
        return;
    };
    let connector = RedisConnector::new()
        .tcp(TcpConnector::new().read_timeout(Some(Duration::from_millis(50))));
    let pool = RedisPool::from_parts(
        Pool::builder(connector).max_per_route(1).build().unwrap(),
        RedisRoute::parse(&server.url("")).unwrap(),
    );
    let mut conn = pool.get().unwrap();
    let () = conn.set("key", "value").unwrap();
    let err = conn
        .blpop::<_, Option<(String, String)>>("list", 0.3)
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert!(!redis::ConnectionLike::is_open(&*conn));
    drop(conn);
    let mut conn = pool.get().unwrap();
    let value: String = conn.get("key").unwrap();
    assert_eq!(value, "value");
    drop(conn);
    assert_eq!(pool.pool().health().broken, 1);
    nothing_leased(&pool);
}

#[test]
fn session_state_is_not_passed_on() {
    use redis::Commands;
    let Some(server) = RedisProcess::start() else {
        return;
    };
    let pool = RedisPool::build(&server.url(""), |pool| pool.max_per_route(1)).unwrap();
    let broken = || pool.pool().health().broken;

    // A transaction left open.
    let mut conn = pool.get().unwrap();
    redis::cmd("MULTI").exec(&mut conn).unwrap();
    redis::cmd("SET")
        .arg("k")
        .arg("queued")
        .exec(&mut conn)
        .unwrap();
    drop(conn);
    assert_eq!(broken(), 1);
    let mut conn = pool.get().unwrap();
    let k: Option<String> = conn.get("k").unwrap();
    assert_eq!(k, None, "the queued SET never ran");

    // A transaction run to its end by hand keeps the connection.
    redis::cmd("WATCH").arg("k").exec(&mut conn).unwrap();
    redis::cmd("MULTI").exec(&mut conn).unwrap();
    redis::cmd("SET")
        .arg("k")
        .arg("done")
        .exec(&mut conn)
        .unwrap();
    let _: Value = redis::cmd("EXEC").query(&mut conn).unwrap();
    drop(conn);
    assert_eq!(broken(), 1);

    // A client name, a subscription.
    let mut conn = pool.get().unwrap();
    redis::cmd("CLIENT")
        .arg("SETNAME")
        .arg("mine")
        .exec(&mut conn)
        .unwrap();
    drop(conn);
    assert_eq!(broken(), 2);
    let mut conn = pool.get().unwrap();
    let name: Option<String> = redis::cmd("CLIENT")
        .arg("GETNAME")
        .query(&mut conn)
        .unwrap();
    assert_eq!(name, None);
    drop(conn);
    assert_eq!(broken(), 3, "CLIENT of any kind closes the connection");
    let mut conn = pool.get().unwrap();
    let _: Value = redis::cmd("SUBSCRIBE")
        .arg("news")
        .query(&mut conn)
        .unwrap();
    drop(conn);
    assert_eq!(broken(), 4);
    let mut conn = pool.get().unwrap();
    let k: String = conn.get("k").unwrap();
    assert_eq!(k, "done");
    drop(conn);
    nothing_leased(&pool);
}

#[test]
fn many_tasks_share_a_few_connections() {
    let Some(server) = RedisProcess::start() else {
        return;
    };
    let pool = RedisPool::build(&server.url(""), |pool| pool.max_per_route(8)).unwrap();
    let (_, runtime) = runtimes().into_iter().next().unwrap();
    runtime.block_on(async {
        let tasks: Vec<_> = (0..64)
            .map(|task| {
                let pool = pool.clone();
                tokio::spawn(async move {
                    for i in 0..50 {
                        let mut conn = pool.get_async().await.unwrap();
                        let key = format!("task{task}");
                        let n: i64 = redis::AsyncCommands::incr(&mut conn, &key, 1)
                            .await
                            .unwrap();
                        assert_eq!(n, i + 1);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
    let threads: Vec<_> = (0..16)
        .map(|thread| {
            let pool = pool.clone();
            std::thread::spawn(move || {
                for _ in 0..50 {
                    let mut conn = pool.get().unwrap();
                    let n: i64 =
                        redis::Commands::incr(&mut conn, format!("thread{thread}"), 1).unwrap();
                    assert!(n >= 1);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let mut direct = server.direct("");
    for task in 0..64 {
        let n: i64 = redis::Commands::get(&mut direct, format!("task{task}")).unwrap();
        assert_eq!(n, 50);
    }
    let stats = pool.pool().route_stats(pool.route());
    assert!(stats.created <= 8, "{stats:?}");
    assert_eq!(stats.leased, 0, "{stats:?}");
    assert_eq!(pool.pool().health().broken, 0);
}

#[test]
fn rediss_with_a_private_ca() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

    let dir = std::env::temp_dir().join(format!("leasehold-redis-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().unwrap();
    let server_cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    let (cert, key, ca) = (
        dir.join("server.crt"),
        dir.join("server.key"),
        dir.join("ca.crt"),
    );
    std::fs::write(&cert, server_cert.pem()).unwrap();
    std::fs::write(&key, server_key.serialize_pem()).unwrap();
    std::fs::write(&ca, ca_cert.pem()).unwrap();
    let path = |p: &std::path::Path| p.to_str().unwrap().to_owned();
    let args = [
        "--tls-cert-file".to_owned(),
        path(&cert),
        "--tls-key-file".to_owned(),
        path(&key),
        "--tls-ca-cert-file".to_owned(),
        path(&ca),
        "--tls-auth-clients".to_owned(),
        "no".to_owned(),
        "--requirepass".to_owned(),
        "tls-pass".to_owned(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let Some(server) = RedisProcess::with_tls(&args) else {
        let _ = std::fs::remove_dir_all(&dir);
        return;
    };

    let mut roots = leasehold::rustls::RootCertStore::empty();
    roots.add(ca_cert.der().clone()).unwrap();
    let tls = leasehold::tls::TlsConnector::builder()
        .root_certificates(roots)
        .build()
        .unwrap();
    let url = format!("rediss://:tls-pass@127.0.0.1:{}/2", server.addr().port());
    let route = RedisRoute::parse(&url).unwrap();
    assert!(route.is_tls());
    let pool = RedisPool::from_parts(
        Pool::builder(RedisConnector::new().tls(tls))
            .build()
            .unwrap(),
        route,
    );
    let mut conn = pool.get().unwrap();
    assert!(conn.is_tls());
    redis::cmd("SET")
        .arg("secure")
        .arg("yes")
        .exec(&mut conn)
        .unwrap();
    drop(conn);
    let (_, runtime) = runtimes().into_iter().next().unwrap();
    runtime.block_on(async {
        use redis::AsyncCommands;
        let mut conn = pool.get_async().await.unwrap();
        let value: String = conn.get("secure").await.unwrap();
        assert_eq!(value, "yes");
        let big = vec![3u8; 200_000];
        let () = conn.set("big", &big).await.unwrap();
        let back: Vec<u8> = conn.get("big").await.unwrap();
        assert_eq!(back, big);
    });
    assert_eq!(pool.pool().route_stats(pool.route()).created, 1);
    assert_eq!(pool.pool().health().broken, 0);

    // The default roots do not trust the private CA.
    let untrusting = RedisPool::open(&url).unwrap();
    let err = untrusting.get().unwrap_err();
    assert!(err.to_string().contains("certificate"), "{err}");
    nothing_leased(&pool);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
