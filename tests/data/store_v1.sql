-- A measurement store written by the landed hwnas (schema version 1, before PRAGMA user_version):
-- its CREATE statements as hwnas/store.py had them at main aa94f26, and real rows from one
-- `hwnas measure` (2 models) and one `hwnas profile --what networks --num 1 --per-node`.
BEGIN TRANSACTION;
CREATE TABLE devices (
    name TEXT PRIMARY KEY,
    healthy INTEGER NOT NULL,
    failures INTEGER NOT NULL,
    last_error TEXT,
    updated_utc TEXT NOT NULL
);
INSERT INTO "devices" VALUES('local',1,0,NULL,'2026-12-01T17:42:13.082Z');
CREATE TABLE measurements (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device TEXT NOT NULL,
    kind TEXT NOT NULL,
    backend TEXT NOT NULL,
    runtime_version TEXT,
    providers TEXT NOT NULL,
    threads INTEGER,
    affinity TEXT,
    agent_version TEXT NOT NULL,
    item TEXT NOT NULL,
    model_sha256 TEXT NOT NULL,
    signature TEXT NOT NULL,
    space TEXT,
    arch TEXT,
    source TEXT,
    latency_ms REAL NOT NULL,
    mean_ms REAL, std_ms REAL, p10_ms REAL, p90_ms REAL, cov REAL,
    sessions INTEGER NOT NULL,
    session_spread REAL,
    valid INTEGER NOT NULL,
    warnings TEXT NOT NULL,
    stats TEXT NOT NULL,
    raw TEXT NOT NULL,
    facts TEXT,
    request_key TEXT,
    created_utc TEXT NOT NULL
);
INSERT INTO "measurements" VALUES(1,'local','x86_cpu','onnxruntime','1.32.0','["CPUExecutionProvider"]',1,NULL,'0.1.0+f700c8d4ec1b','model','3c7049b203635b877d3861557ba025392719d942f876969f2565460320a7be02','onnx:3c7049b203635b877d3861557ba025392719d942f876969f2565460320a7be02',NULL,NULL,'/tmp/v1fix/a.onnx',1.62800503571428542559e-02,1.64994007671957661209e-02,7.62019017876704087693e-04,0.015746241,1.82375825714285733081e-02,4.61846480747201484917e-02,2,3.97093805058210541636e-02,1,'[]','{"mean_ms": 0.016499400767195766, "std_ms": 0.0007620190178767041, "p10_ms": 0.015746241, "p90_ms": 0.018237582571428573, "cov": 0.04618464807472015, "session_medians_ms": [0.015956815, 0.016603285714285713], "drifted_session_medians_ms": [], "round_cov": [0.07003220384260647, 0.019571617846860657], "numbers": [200, 126], "attempts": [2, 1], "drift": false, "reference_ms": [[0.0452436, 0.0456277], [0.044923000000000005, 0.0446579]], "reference_baseline_ms": 0.04543565, "reference_kernel": "onnxruntime:707b1a4c5a79d0c0", "phase_ms": [{"reference": 12.928571, "warmup": 5.009426, "calibrate": 13.621932000000001, "rounds": 31.302023, "session": 47.822525}, {"reference": 7.857975, "warmup": 5.034923, "calibrate": 3.489513, "rounds": 6.227497, "session": 1.503699000000001}]}','[[0.015956815, 0.01787758, 0.015794835], [0.016603285714285713, 0.016677571428571427, 0.01608631746031746]]','{"cpu": "Intel(R) Xeon(R) Processor", "cores": 2, "governor": {}, "loadavg": [0.54052734375, 0.29541015625, 0.13330078125], "hostname": "vm"}','97fbf80b2223868b2fb88eb5963807cad7f45c10583097235d1e4a0ca0556c75','2026-12-01T17:42:10.013Z');
INSERT INTO "measurements" VALUES(2,'local','x86_cpu','onnxruntime','1.32.0','["CPUExecutionProvider"]',1,NULL,'0.1.0+f700c8d4ec1b','model','4c15c3bd3d760637b580c60413aebc9f98722bc7a7505c2b4d885acce813adeb','onnx:4c15c3bd3d760637b580c60413aebc9f98722bc7a7505c2b4d885acce813adeb',NULL,NULL,'/tmp/v1fix/b.onnx',2.3547282635135131229e-02,2.06194834234234257441e-02,1.08886933608572638448e-02,1.20219219999999991227e-02,3.48179005405405486706e-02,5.28077892993568887014e-01,2,9.18270511519945542566e-01,0,'["CoV 36.3% above 10% after 3 attempts"]','{"mean_ms": 0.020619483423423426, "std_ms": 0.010888693360857264, "p10_ms": 0.012021921999999999, "p90_ms": 0.03481790054054055, "cov": 0.5280778929935689, "session_medians_ms": [0.012735894999999999, 0.034358670270270265], "drifted_session_medians_ms": [], "round_cov": [0.03790916494727305, 0.3631903123987393], "numbers": [200, 185], "attempts": [1, 3], "drift": false, "reference_ms": [[0.0448121, 0.0448412], [0.0459315, 0.0449388]], "reference_baseline_ms": 0.045042399999999996, "reference_kernel": "onnxruntime:707b1a4c5a79d0c0", "phase_ms": [{"reference": 7.867006, "warmup": 5.014383, "calibrate": 3.561051, "rounds": 7.621293, "session": 1.6459940000000017}, {"reference": 11.981292999999999, "warmup": 7.526632, "calibrate": 27.094468, "rounds": 45.833870000000005, "session": 2.6390130000000056}]}','[[0.012186685, 0.012735894999999999, 0.01314538], [0.03471192432432433, 0.016578345945945948, 0.034358670270270265]]','{"cpu": "Intel(R) Xeon(R) Processor", "cores": 2, "governor": {}, "loadavg": [0.54052734375, 0.29541015625, 0.13330078125], "hostname": "vm"}','53bf4a7046ab8995e75d706f31a8a83fb9aa565ee9caddedd966d4b5d16e98a3','2026-12-01T17:42:10.014Z');
INSERT INTO "measurements" VALUES(3,'local','x86_cpu','onnxruntime','1.32.0','["CPUExecutionProvider"]',1,NULL,'0.1.0+f700c8d4ec1b','network','548215a4cc97942bcb49f68ba1b836abbc377cc63bbb0f3381013674b94b8259','net:nasbench201:|avg_pool_3x3~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|skip_connect~0|skip_connect~1|none~2|','nasbench201','|avg_pool_3x3~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|skip_connect~0|skip_connect~1|none~2|','/tmp/v1fix/ws/onnx/nasbench201/networks/fccfa9648aab51e87d0ab4fd.onnx',9.3262883333333335134e-01,1.15560961111111115684e+00,5.3175847456350644471e-01,8.79978100000000096336e-01,2.60047779999999972844e+00,4.60154077510850856302e-01,2,6.78580063916102427246e-02,0,'["CoV 57.9% above 10% after 3 attempts"]','{"mean_ms": 1.1556096111111112, "std_ms": 0.5317584745635064, "p10_ms": 0.8799781000000001, "p90_ms": 2.6004777999999997, "cov": 0.46015407751085086, "session_medians_ms": [0.9009856666666667, 0.964272], "drifted_session_medians_ms": [], "round_cov": [0.5785565247446999, 0.05080702429868344], "numbers": [3, 1], "attempts": [3, 1], "drift": false, "reference_ms": [[0.0450461, 0.046253100000000005], [0.045032699999999995, 0.0454634]], "reference_baseline_ms": 0.0456496, "reference_kernel": "onnxruntime:707b1a4c5a79d0c0", "phase_ms": [{"reference": 22.551608, "warmup": 5.32754, "calibrate": 20.667738, "rounds": 27.01317, "session": 51.313192}, {"reference": 16.967608, "warmup": 7.890838, "calibrate": 5.131802, "rounds": 2.931787, "session": 22.65025500000001}]}','[[0.9009856666666667, 0.884826, 2.236357], [0.964272, 1.022621, 0.924596]]','{"cpu": "Intel(R) Xeon(R) Processor", "cores": 2, "governor": {}, "loadavg": [0.73779296875, 0.34033203125, 0.14892578125], "hostname": "vm"}','c00298934daf2684a11db2c63acc8c5d8711f10517d3781e92b584ec2278aa78','2026-12-01T17:42:12.940Z');
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO "meta" VALUES('schema_version','1');
CREATE TABLE node_profiles (
    measurement_id INTEGER NOT NULL REFERENCES measurements(id),
    name TEXT NOT NULL, op_type TEXT, provider TEXT, dur_us REAL NOT NULL
);
INSERT INTO "node_profiles" VALUES(3,'conv_19_nchwc','Conv','CPUExecutionProvider',51.5);
INSERT INTO "node_profiles" VALUES(3,'conv_8_nchwc','Conv','CPUExecutionProvider',48.0);
INSERT INTO "node_profiles" VALUES(3,'conv_30_nchwc','Conv','CPUExecutionProvider',47.0);
INSERT INTO "node_profiles" VALUES(3,'conv_41_nchwc','Conv','CPUExecutionProvider',47.0);
INSERT INTO "node_profiles" VALUES(3,'conv_52_nchwc','Conv','CPUExecutionProvider',47.0);
CREATE INDEX by_signature ON measurements (device, backend, signature, id);
CREATE INDEX by_request ON measurements (request_key);
DELETE FROM "sqlite_sequence";
INSERT INTO "sqlite_sequence" VALUES('measurements',3);
COMMIT;
