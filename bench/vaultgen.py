"""Deterministic synthetic Obsidian-style vaults for the index benchmarks.

    uv run --frozen python bench/vaultgen.py OUT --notes 2000 [--seed 1]

Writes OUT/ (which must not exist or be empty) with about:

  - 25 % daily notes C{daily/YYYY-MM-DD.md} (consecutive days, short: tasks and a log);
  - meeting notes C{meetings/YYYY/...} and C{회의/YYYY/...}, project notes
    C{projects/<project>/...} and C{프로젝트/...}, topic notes C{topics/<area>/...}
    and C{주제/...}, a few C{people/} and C{inbox/} notes;
  - about 70 % English and 30 % Korean notes (Korean with correct particles, so
    C{회의} has to match C{회의를}, C{회의록}), some with a few English terms;
  - YAML frontmatter (title, tags, date) on about half, H1 titles, C{##}/C{###}
    sections, paragraphs, task lists, bullet lists, C{[[wikilinks]]} to other
    notes of the vault, inline C{#tags}, code fences in technical notes;
  - sizes: most notes 200-1500 words, median about 350 (daily notes 60-400), 2 % long
    ones (2,500-7,000 words); a Korean note has 0.6 eojeol per English word.

Every note is mainly about one of L{TOPICS} (36, work and personal) with some
sentences from a second one, so that full-text and vector search have
something to find. The same C{(notes, seed)} always gives the same bytes.
A hidden C{.vaultgen.json} records what was generated (the walker skips it).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

#: Bumped whenever the output changes for the same arguments (caches key on it).
VERSION = 1
MANIFEST = ".vaultgen.json"


@dataclass(frozen=True)
class Topic:
    """The vocabulary of one subject, in English and Korean."""

    key: str
    title: str
    ko_title: str
    terms: tuple[str, ...]
    actions: tuple[str, ...]
    ko_terms: tuple[str, ...]
    ko_actions: tuple[str, ...]
    tech: bool = False
    code: str = ""


def _topic(key: str, title: str, ko_title: str, terms: str, actions: str, ko_terms: str,
           ko_actions: str, tech: bool = False, code: str = "") -> Topic:
    split = lambda s: tuple(x.strip() for x in s.split("|") if x.strip())  # noqa: E731
    return Topic(key, title, ko_title, split(terms), split(actions), split(ko_terms),
                 split(ko_actions), tech, code)


# ko_actions are Sino-Korean "X하다" stems: "{action}하기로 했다".
TOPICS: tuple[Topic, ...] = (
    _topic("search", "Search relevance", "검색 품질",
           "search ranking|BM25 scores|query latency|embedding model|vector index|"
           "reciprocal rank fusion|relevance labels|tokenizer|synonyms|snippet highlighting|"
           "nDCG|recall at ten|query log",
           "label fifty more queries|compare BM25 with the hybrid ranking|"
           "tune the tokenizer for Korean|check the query log for empty results",
           "검색 결과|검색 품질|형태소 분석|질의 로그|임베딩 모델|벡터 색인|순위 결합|"
           "정답 라벨|동의어 사전|검색 지연 시간",
           "질의 세트를 보강|형태소 분석기를 비교|검색 로그를 분석|정답 라벨을 검토",
           tech=True, code="sql"),
    _topic("k8s", "Kubernetes cluster", "쿠버네티스 클러스터",
           "pod autoscaling|node pool|CPU requests|memory limits|helm chart|ingress controller|"
           "rolling deployment|readiness probe|cluster upgrade|namespace quotas|OOMKilled pods",
           "raise the memory limits|drain the old node pool|pin the helm chart version|"
           "add a readiness probe",
           "파드 오토스케일링|노드 풀|메모리 제한|헬름 차트|인그레스|롤링 배포|클러스터 업그레이드|"
           "네임스페이스 할당량",
           "노드 풀을 교체|메모리 제한을 상향|클러스터 업그레이드를 진행|배포 전략을 변경",
           tech=True, code="yaml"),
    _topic("postgres", "Postgres operations", "데이터베이스 운영",
           "autovacuum|table bloat|slow queries|connection pool|read replica|index scan|"
           "query plan|replication lag|point-in-time recovery|WAL archiving|deadlocks",
           "add an index on created_at|tune autovacuum thresholds|move reports to the replica|"
           "check the slow query log",
           "슬로우 쿼리|커넥션 풀|읽기 복제본|복제 지연|인덱스 추가|실행 계획|데이터베이스 백업|"
           "장애 복구|트랜잭션 잠금",
           "인덱스를 추가|백업 주기를 점검|복제 지연을 모니터링|쿼리를 최적화",
           tech=True, code="sql"),
    _topic("incident", "Incident review", "장애 대응",
           "outage timeline|root cause|on-call rotation|pager alert|status page|error budget|"
           "rollback|customer impact|postmortem actions|severity level|runbook",
           "write the postmortem|update the runbook|add an alert on error rate|"
           "review the on-call handover",
           "장애 보고서|원인 분석|온콜 당번|장애 등급|롤백|고객 영향|재발 방지 대책|상황 공유|"
           "대응 절차",
           "장애 보고서를 작성|재발 방지 대책을 수립|알림 기준을 조정|대응 절차를 개선",
           tech=True, code="bash"),
    _topic("billing", "Billing system", "결제 시스템",
           "invoices|proration|refunds|payment provider|subscription plans|tax rates|"
           "ledger entries|failed charges|dunning emails|currency conversion|chargebacks",
           "reconcile the ledger with the provider|fix proration for annual plans|"
           "retry failed charges|audit refund permissions",
           "결제 실패|환불 처리|정기 결제|정산|세금 계산|영수증 발행|결제 대행사|구독 요금제|"
           "카드 승인",
           "정산 데이터를 대사|환불 정책을 정리|결제 실패 알림을 개선|요금제를 개편",
           tech=True, code="python"),
    _topic("mobile", "Mobile app release", "모바일 앱 출시",
           "app store review|crash rate|push notifications|release train|beta testers|"
           "deep links|offline mode|app size|TestFlight build|Android vitals",
           "cut the release branch|send the build to beta testers|fix the crash on login|"
           "shrink the app bundle",
           "앱 스토어 심사|크래시 비율|푸시 알림|베타 테스트|딥 링크|오프라인 모드|앱 용량|"
           "출시 일정",
           "릴리스 브랜치를 생성|베타 빌드를 배포|크래시를 수정|출시 일정을 공유",
           tech=True, code="bash"),
    _topic("data", "Data pipeline", "데이터 파이프라인",
           "ETL jobs|nightly batch|data warehouse|dbt models|schema changes|late events|"
           "backfill|data quality checks|partitioned tables|Airflow DAG|event tracking",
           "backfill the last thirty days|add a freshness check|split the nightly batch|"
           "document the dbt models",
           "데이터 웨어하우스|배치 작업|스키마 변경|데이터 품질|백필|이벤트 수집|파티션 테이블|"
           "지표 정의",
           "백필을 실행|데이터 품질 검사를 추가|지표 정의를 통일|배치 일정을 조정",
           tech=True, code="sql"),
    _topic("ml", "Model training", "모델 학습",
           "training run|validation loss|learning rate|feature store|model drift|"
           "evaluation set|GPU quota|hyperparameter sweep|inference latency|overfitting",
           "rerun the sweep with a lower learning rate|freeze the evaluation set|"
           "profile inference latency|request more GPU quota",
           "학습 데이터|검증 손실|학습률|모델 성능|추론 지연|과적합|평가 데이터셋|GPU 할당량",
           "학습률을 낮춰 재학습|평가 데이터셋을 고정|추론 속도를 측정|실험 결과를 정리",
           tech=True, code="python"),
    _topic("perf", "Performance tuning", "성능 개선",
           "p99 latency|flame graph|memory leak|garbage collection pauses|cache hit rate|"
           "load test|thread pool|cold start|N+1 queries|profiling",
           "profile the hot path|add a cache in front of the API|run the load test again|"
           "fix the memory leak",
           "응답 시간|메모리 누수|캐시 적중률|부하 테스트|프로파일링|병목 구간|콜드 스타트|"
           "스레드 풀",
           "부하 테스트를 수행|병목 구간을 분석|캐시를 도입|메모리 누수를 수정",
           tech=True, code="python"),
    _topic("security", "Security review", "보안 점검",
           "SSO login|SAML assertions|two-factor authentication|password policy|"
           "secret rotation|penetration test|access review|audit log|SCIM provisioning|CVE",
           "rotate the API keys|enforce two-factor authentication|run the access review|"
           "patch the CVE in the image",
           "2단계 인증|비밀번호 정책|접근 권한|보안 취약점|모의 해킹|감사 로그|키 교체|"
           "개인정보 보호",
           "접근 권한을 검토|비밀번호 정책을 강화|취약점을 조치|감사 로그를 점검",
           tech=True, code="bash"),
    _topic("api", "API design", "API 설계",
           "REST endpoints|pagination|rate limiting|API versioning|webhooks|idempotency keys|"
           "error codes|OpenAPI spec|backwards compatibility|breaking change",
           "write the OpenAPI spec|add idempotency keys to POST|deprecate the v1 endpoints|"
           "document the error codes",
           "API 게이트웨이|요청 제한|버전 관리|웹훅|에러 코드|하위 호환성|페이지네이션|API 문서",
           "API 문서를 갱신|하위 호환성을 검토|웹훅 재시도를 구현|에러 코드를 정리",
           tech=True, code="json"),
    _topic("ci", "Testing and CI", "테스트 자동화",
           "flaky tests|CI pipeline|test coverage|integration tests|build cache|"
           "merge queue|snapshot tests|test fixtures|nightly build|linting",
           "quarantine the flaky tests|cache the dependencies in CI|split the integration suite|"
           "raise coverage on the parser",
           "불안정한 테스트|CI 파이프라인|테스트 커버리지|통합 테스트|빌드 캐시|코드 리뷰|"
           "테스트 자동화",
           "불안정한 테스트를 격리|빌드 시간을 단축|통합 테스트를 분리|커버리지를 개선",
           tech=True, code="yaml"),
    _topic("observability", "Observability", "모니터링",
           "dashboards|distributed tracing|alert fatigue|log retention|metrics cardinality|"
           "SLO burn rate|OpenTelemetry|error tracking|uptime checks",
           "delete the noisy alerts|add tracing to the checkout service|"
           "define SLOs for search|cut log retention to thirty days",
           "대시보드|분산 추적|알림 피로|로그 보관|지표 수집|서비스 수준 목표|에러 추적|"
           "가용성 점검",
           "불필요한 알림을 정리|대시보드를 개편|추적을 도입|로그 보관 기간을 조정",
           tech=True, code="yaml"),
    _topic("frontend", "Design system", "디자인 시스템",
           "button component|color tokens|dark mode|typography scale|Storybook|"
           "accessibility|contrast ratio|screen reader|form validation|responsive layout",
           "audit the color contrast|publish the tokens package|fix focus order in forms|"
           "add dark mode to the settings page",
           "버튼 컴포넌트|색상 토큰|다크 모드|글꼴 크기|접근성|색상 대비|"
           "화면 낭독기|반응형 레이아웃",
           "색상 대비를 점검|컴포넌트를 정리|다크 모드를 적용|접근성 검사를 진행",
           tech=True, code="json"),
    _topic("i18n", "Localization", "현지화",
           "translation strings|ICU message format|plural rules|right-to-left layout|"
           "locale fallback|date formats|translation memory|Korean translation|glossary",
           "extract the new strings|review the Korean glossary|fix plural rules in Polish|"
           "test the right-to-left layout",
           "번역 문자열|용어집|날짜 형식|다국어 지원|번역 검수|로캘 설정|복수형 규칙",
           "용어집을 정비|번역 검수를 요청|날짜 형식을 통일|신규 문자열을 추출",
           tech=True, code="json"),
    _topic("infra_cost", "Cloud costs", "클라우드 비용",
           "reserved instances|storage tiers|egress fees|cost allocation tags|idle resources|"
           "spot instances|monthly bill|budget alerts|rightsizing",
           "tag every bucket with a cost center|buy reserved instances for the database|"
           "delete idle load balancers|set budget alerts",
           "예약 인스턴스|스토리지 등급|트래픽 비용|비용 태그|유휴 자원|스팟 인스턴스|월간 청구서|"
           "예산 알림",
           "유휴 자원을 정리|예약 인스턴스를 구매|비용 태그를 정비|예산 알림을 설정",
           tech=True, code="bash"),
    _topic("hiring", "Hiring", "채용",
           "interview loop|take-home exercise|job description|candidate pipeline|"
           "hiring committee|reference checks|offer letter|sourcing|interview rubric",
           "rewrite the job description|calibrate the interview rubric|"
           "schedule the debrief|send the offer letter",
           "채용 공고|면접 질문|코딩 테스트|서류 검토|면접관 교육|처우 협의|"
           "레퍼런스 체크|채용 일정",
           "면접 질문을 정리|채용 공고를 수정|면접 일정을 조율|처우를 협의"),
    _topic("onboarding", "Onboarding", "신입 교육",
           "onboarding checklist|first week|buddy program|laptop setup|access requests|"
           "starter tasks|team introductions|documentation gaps",
           "update the onboarding checklist|pair the new hire with a buddy|"
           "pre-create the accounts|pick three starter tasks",
           "온보딩|멘토 제도|첫 주 일정|계정 발급|입문 과제|팀 소개|교육 자료",
           "교육 자료를 갱신|멘토를 배정|계정을 미리 발급|입문 과제를 선정"),
    _topic("planning", "Roadmap planning", "로드맵 계획",
           "quarterly goals|OKRs|roadmap|prioritisation|dependencies|headcount|"
           "milestones|scope cuts|stakeholder review|capacity planning",
           "draft the OKRs|cut scope for the second milestone|review dependencies with design|"
           "share the roadmap with sales",
           "분기 목표|로드맵|우선순위|마일스톤|일정 조정|인력 계획|이해관계자 검토|범위 축소",
           "분기 목표를 수립|우선순위를 조정|로드맵을 공유|마일스톤을 재설정"),
    _topic("retro", "Team retrospective", "회고",
           "retrospective|what went well|what to improve|action items|sprint velocity|"
           "team morale|meeting load|focus time|process changes",
           "cut one recurring meeting|protect focus time on Wednesdays|"
           "track the action items in the board|rotate the facilitator",
           "스프린트 회고|잘한 점|개선할 점|실행 항목|팀 분위기|회의 시간|집중 시간|업무 방식",
           "회의 시간을 단축|실행 항목을 추적|집중 시간을 확보|회고 방식을 변경"),
    _topic("support", "Customer support", "고객 지원",
           "support tickets|response time|escalations|help center articles|chatbot|"
           "customer satisfaction|macros|refund requests|bug reports from customers",
           "write help center articles for the top questions|shorten first response time|"
           "route escalations to the right team|tag tickets by feature",
           "고객 문의|응답 시간|상담원 배정|도움말 문서|챗봇|고객 만족도|불만 접수|자주 묻는 질문",
           "도움말 문서를 작성|응답 시간을 단축|상담원 배정을 자동화|문의 유형을 분류"),
    _topic("marketing", "Marketing campaign", "마케팅 캠페인",
           "launch campaign|landing page|newsletter|conversion rate|A/B test|ad budget|"
           "webinar|press release|customer stories|social posts",
           "rewrite the landing page copy|run an A/B test on pricing|"
           "schedule the newsletter|draft the press release",
           "출시 캠페인|랜딩 페이지|뉴스레터|전환율|광고 예산|웨비나|보도 자료|고객 사례",
           "랜딩 페이지를 개선|광고 예산을 재배분|뉴스레터를 발송|보도 자료를 준비"),
    _topic("vendor", "Vendor contracts", "계약 관리",
           "contract renewal|pricing negotiation|seat count|procurement|legal review|"
           "data processing agreement|invoice terms|vendor security questionnaire",
           "ask legal to review the DPA|negotiate a multi-year discount|"
           "reduce the seat count|fill in the security questionnaire",
           "계약 갱신|가격 협상|라이선스 수|구매 절차|법무 검토|개인정보 처리 위탁|결제 조건",
           "계약 조건을 검토|가격을 재협상|라이선스 수를 조정|법무 검토를 요청"),
    _topic("wiki", "Documentation", "문서화",
           "internal wiki|architecture decision records|README|how-to guides|"
           "stale pages|search in the wiki|templates|diagrams",
           "archive the stale pages|write an ADR for the queue|add diagrams to the README|"
           "move the runbooks into the wiki",
           "사내 위키|설계 결정 기록|문서 템플릿|가이드 문서|오래된 문서|다이어그램|문서 이전",
           "오래된 문서를 정리|설계 결정을 기록|문서 템플릿을 마련|위키를 이전"),
    _topic("one_on_one", "One-on-ones", "일대일 면담",
           "career growth|feedback|promotion packet|goals for the half|workload|"
           "learning budget|mentoring|performance review",
           "write down concrete feedback|review the promotion packet|"
           "agree on goals for the half|check the workload",
           "경력 개발|피드백|승진 심사|반기 목표|업무량|교육 예산|성과 평가",
           "피드백을 정리|반기 목표를 합의|업무량을 조정|교육 예산을 신청"),
    _topic("cooking", "Cooking", "요리",
           "sourdough starter|braised short ribs|weeknight pasta|meal prep|spice rack|"
           "cast iron pan|fermentation|grocery list|slow cooker",
           "feed the starter tonight|buy more flour|try the braise with less sugar|"
           "prep lunches for the week",
           "김치찌개|된장국|밑반찬|장보기 목록|발효|양념|밀프렙|제철 재료",
           "장보기를 준비|밑반찬을 조리|김치를 담그기로 결심|레시피를 정리"),
    _topic("running", "Running", "운동",
           "marathon training|long run|tempo run|interval sessions|running shoes|"
           "heart rate zones|recovery week|race day|shin splints|stretching",
           "add one easy run per week|replace the running shoes|taper before race day|"
           "stretch after every session",
           "달리기 기록|마라톤 준비|근력 운동|스쿼트|회복 주간|심박수|운동 일지|스트레칭",
           "운동 일지를 작성|회복 주간을 운영|스트레칭을 습관화|훈련 계획을 수정"),
    _topic("travel", "Travel planning", "여행",
           "flight booking|hotel reservation|itinerary|rail pass|packing list|"
           "travel insurance|museum tickets|local food|currency|jet lag",
           "book the flights before prices go up|print the itinerary|"
           "reserve the museum tickets|buy travel insurance",
           "여행 일정|숙소 예약|항공권|렌터카|짐 싸기|여행자 보험|맛집|환전",
           "항공권을 예약|숙소를 확정|렌터카를 예약|여행 일정을 정리"),
    _topic("reading", "Reading notes", "독서",
           "book notes|highlights|chapter summary|reading list|essay collection|"
           "systems thinking|biography|favourite quotes|library holds",
           "summarise the last three chapters|return the library books|"
           "pick the next book for the club|copy the highlights",
           "독서 메모|책 요약|인상 깊은 구절|독서 모임|읽을 책 목록|서평|도서관 대출",
           "서평을 작성|독서 모임을 준비|책 요약을 정리|읽을 책 목록을 갱신"),
    _topic("garden", "Garden and plants", "식물 키우기",
           "houseplants|watering schedule|repotting|fungus gnats|grow light|tomato seedlings|"
           "compost|pruning|balcony garden",
           "repot the monstera|move the seedlings under the grow light|"
           "water less in winter|start a compost bin",
           "화분 분갈이|물 주기|베란다 텃밭|모종|퇴비|가지치기|식물 조명",
           "분갈이를 진행|물 주기 일정을 조정|텃밭을 정리|퇴비를 준비"),
    _topic("home", "Home and moving", "이사",
           "moving boxes|lease renewal|furniture|internet installation|utilities|"
           "deposit|renovation quote|storage unit|change of address",
           "get three renovation quotes|book the movers|schedule the internet installation|"
           "update the address at the bank",
           "이사 준비|전세 계약|짐 정리|가구 배치|인터넷 설치|보증금|인테리어 견적|전입 신고",
           "이사 업체를 예약|짐 정리를 진행|전입 신고를 완료|인테리어 견적을 비교"),
    _topic("finance", "Personal finance", "재테크",
           "monthly budget|index funds|emergency fund|tax return|pension contributions|"
           "credit card statement|savings rate|insurance premiums",
           "move the bonus into the emergency fund|file the tax return|"
           "review the insurance premiums|raise the pension contribution",
           "가계부|연말 정산|적금|비상금|연금 저축|신용카드 명세서|보험료|저축률",
           "가계부를 정리|연말 정산을 준비|적금을 개설|보험료를 점검"),
    _topic("language", "Language learning", "외국어 공부",
           "vocabulary cards|spaced repetition|conversation practice|grammar drills|"
           "listening practice|language exchange|pronunciation|reading graded books",
           "review the flashcards every morning|book a conversation lesson|"
           "shadow one podcast episode|write a short diary entry",
           "영어 회화|단어 암기|문법 공부|듣기 연습|발음 교정|언어 교환|일본어 공부",
           "단어 암기를 반복|회화 수업을 예약|문법을 복습|듣기 연습을 계속"),
    _topic("health", "Health and sleep", "건강 관리",
           "sleep schedule|caffeine cut-off|annual checkup|blood test|posture|screen time|"
           "meditation|step count|standing desk",
           "stop coffee after two|book the annual checkup|take a walk after lunch|"
           "keep the phone out of the bedroom",
           "수면 습관|건강 검진|혈액 검사|자세 교정|명상|걸음 수|스마트폰 사용 시간",
           "건강 검진을 예약|수면 시간을 기록|명상을 시작|카페인을 줄이기로 결정"),
    _topic("music", "Music practice", "악기 연습",
           "piano scales|sight reading|metronome|practice log|recital piece|chord voicings|"
           "ear training|guitar setup",
           "practise the scales slowly|record the recital piece|"
           "learn the left hand first|tune the guitar",
           "피아노 연습|기타 코드|메트로놈|연주회 곡|청음 훈련|연습 일지|악보 읽기",
           "연주회 곡을 연습|연습 일지를 작성|메트로놈으로 연습|청음 훈련을 병행"),
    _topic("photo", "Photography", "사진",
           "film camera|lens choice|golden hour|photo editing|RAW files|backup drive|"
           "street photography|portrait lighting",
           "back up the RAW files|edit the trip photos|try the fifty millimetre lens|"
           "print the best ten shots",
           "필름 카메라|렌즈 선택|사진 보정|골든 아워|인물 사진|거리 사진|사진 백업",
           "사진을 보정|원본 파일을 백업|렌즈를 비교|사진전을 관람"),
    _topic("volunteer", "Community and volunteering", "봉사 활동",
           "food bank shifts|fundraiser|volunteer schedule|community garden|"
           "donation drive|meetup organising|neighbourhood association",
           "sign up for two food bank shifts|print the fundraiser flyers|"
           "email the volunteer schedule|book the meetup venue",
           "봉사 활동|모금 행사|자원봉사 일정|지역 모임|기부 물품|동네 모임",
           "봉사 일정을 공유|모금 행사를 준비|기부 물품을 정리|모임 장소를 예약"),
)

PEOPLE = ("Mina", "Joon", "Alex", "Priya", "Sam", "Hana", "Diego", "Yuna", "Tom", "Seo-yeon",
          "Omar", "Jia", "Lena", "Minho", "Chris", "Eun-ji")
KO_PEOPLE = ("민아", "준호", "서연", "지훈", "하나", "유나", "민호", "은지", "도윤", "수빈")

EN_HEADINGS = ("Context", "Notes", "Decisions", "Open questions", "Next steps", "Risks",
               "Background", "Details", "Follow-ups", "Ideas", "Summary", "Log")
KO_HEADINGS = ("배경", "메모", "결정 사항", "논의 내용", "다음 단계", "위험 요소", "세부 내용",
               "후속 조치", "아이디어", "요약", "기록", "안건")
EN_SUFFIXES = ("notes", "plan", "review", "ideas", "checklist", "draft", "overview", "log",
               "proposal", "follow-up", "status", "questions")
KO_SUFFIXES = ("정리", "계획", "검토", "아이디어", "체크리스트", "초안", "메모", "현황",
               "제안", "후속", "질문")
WHEN = ("Friday", "the end of the sprint", "next Tuesday", "the planning meeting",
        "the release", "the end of the month", "Q3", "the offsite")
KO_WHEN = ("금요일", "스프린트 종료", "다음 주 화요일", "계획 회의", "출시", "월말", "3분기",
           "워크숍")
FILLER = ("Nothing is blocking right now.", "This is mostly a reminder for later.",
          "More details are in the thread.", "I am not sure this is the right call yet.",
          "It took longer than I expected.", "Worth revisiting in a month.",
          "The numbers looked fine this time.", "Everyone agreed, more or less.")
KO_FILLER = ("지금은 막힌 부분이 없다.", "나중을 위해 남겨 둔다.", "자세한 내용은 스레드에 있다.",
             "아직 확신은 없다.", "예상보다 시간이 오래 걸렸다.", "한 달 뒤에 다시 보자.",
             "이번에는 수치가 괜찮았다.", "대체로 모두 동의했다.")


# Korean particles


def _has_batchim(word: str) -> bool:
    last = word.rstrip()[-1:]
    if "\uac00" <= last <= "\ud7a3":
        return (ord(last) - 0xAC00) % 28 != 0
    return last.isdigit() and last in "013678"


def josa(word: str, pair: str) -> str:
    """C{word} with the right form of a particle pair such as C{"을/를"} or C{"으로/로"}."""
    with_final, without = pair.split("/")
    if pair == "으로/로" and word[-1:] and (ord(word[-1]) - 0xAC00) % 28 == 8:
        return word + without  # ㄹ-final takes 로
    return word + (with_final if _has_batchim(word) else without)


# Sentences


@dataclass
class Writer:
    """Builds the sentences of one note; C{words} counts what was written."""

    rng: random.Random
    topic: Topic
    other: Topic
    korean: bool
    titles: Sequence[str]
    words: int = 0
    links: list[str] = field(default_factory=list)

    def _pick_topic(self) -> Topic:
        return self.topic if self.rng.random() < 0.75 else self.other

    def term(self) -> str:
        t = self._pick_topic()
        return self.rng.choice(t.ko_terms if self.korean else t.terms)

    def action(self) -> str:
        t = self._pick_topic()
        return self.rng.choice(t.ko_actions if self.korean else t.actions)

    def link(self) -> str:
        title = self.rng.choice(self.titles)
        self.links.append(title)
        return f"[[{title}]]"

    def sentence(self) -> str:
        text = self._korean() if self.korean else self._english()
        self.words += len(text.split())
        return text

    def _english(self) -> str:
        r = self.rng
        t1, t2, who = self.term(), self.term(), r.choice(PEOPLE)
        options = (
            lambda: f"{t1.capitalize()} needs another look before {r.choice(WHEN)}.",
            lambda: f"We agreed to give the {t1} work to {who} and revisit {t2} next week.",
            lambda: f"The main risk is that {t1} slows down {t2}, so {who} will measure it "
                    f"first.",
            lambda: f"I spent the afternoon on {t1}; the {t2} part was easier than expected.",
            lambda: f"{who} suggested we {self.action()} before touching {t1}.",
            lambda: f"Open question: should {t1} depend on {t2}, or the other way around?",
            lambda: f"Last week {r.randint(5, 95)}% of the {t1} items were done on time and "
                    f"{r.randint(2, 40)} are still open.",
            lambda: f"Note to self: {self.action()}, then write down what changed in {t1}.",
            lambda: f"The page about {t1} is out of date; what it says about {t2} is not what "
                    f"we shipped.",
            lambda: f"After talking to {who}, the plan is to {self.action()} by "
                    f"{r.choice(WHEN)}.",
            lambda: f"See {self.link()} for the earlier discussion of {t1}.",
            lambda: f"{who} asked whether {t1} and {t2} can be handled by the same person.",
            lambda: f"For {t1} we will {self.action()} and keep {t2} as it is.",
            lambda: r.choice(FILLER),
        )
        return r.choice(options)()

    def _korean(self) -> str:
        r = self.rng
        t1, t2, who = self.term(), self.term(), r.choice(KO_PEOPLE)
        options = (
            lambda: f"{josa(t1, '은/는')} {r.choice(KO_WHEN)} 전에 다시 검토해야 한다.",
            lambda: f"{who} 님이 {josa(t1, '을/를')} 맡기로 했고, {josa(t2, '은/는')} 다음 주에 "
                    f"다시 보기로 했다.",
            lambda: f"가장 큰 위험은 {josa(t1, '이/가')} {josa(t2, '을/를')} 늦추는 것이어서 "
                    f"{who} 님이 먼저 측정하기로 했다.",
            lambda: f"오후 내내 {josa(t1, '을/를')} 정리했다. {t2} 부분은 생각보다 쉬웠다.",
            lambda: f"{who} 님은 {josa(t1, '을/를')} 건드리기 전에 {self.action()}하자고 "
                    f"제안했다.",
            lambda: f"남은 질문: {josa(t1, '이/가')} {t2}에 의존해야 할까, 아니면 반대일까?",
            lambda: f"지난주 {t1} 항목의 {r.randint(5, 95)}%가 제때 끝났고 {r.randint(2, 40)}개가 "
                    f"남아 있다.",
            lambda: f"메모: {self.action()}하고 {t1}에서 바뀐 점을 기록할 것.",
            lambda: f"{t1} 문서가 오래되었다. {t2}에 대한 설명이 실제와 다르다.",
            lambda: f"{who} 님과 이야기한 뒤 {r.choice(KO_WHEN)}까지 {self.action()}하기로 "
                    f"했다.",
            lambda: f"{t1} 관련 이전 논의는 {self.link()} 참고.",
            lambda: f"{who} 님이 {josa(t1, '와/과')} {josa(t2, '을/를')} 한 사람이 맡을 수 "
                    f"있는지 물었다.",
            lambda: f"{t1}에 대해서는 {self.action()}하고 {josa(t2, '은/는')} 그대로 두기로 했다.",
            lambda: f"회의에서 {josa(t1, '을/를')} 다시 논의했고 회의록은 {who} 님이 정리한다.",
            lambda: r.choice(KO_FILLER),
        )
        return r.choice(options)()

    def paragraph(self) -> str:
        return " ".join(self.sentence() for _ in range(self.rng.randint(2, 6)))

    def tasks(self) -> str:
        lines: list[str] = []
        seen: set[str] = set()
        for _ in range(self.rng.randint(2, 6)):
            mark = "x" if self.rng.random() < 0.4 else " "
            text = (f"{self.action()}하기" if self.korean else self.action().capitalize())
            if text in seen:
                continue
            seen.add(text)
            if self.rng.random() < 0.2:
                text += f" ({self.link()})"
            self.words += len(text.split()) + 1
            lines.append(f"- [{mark}] {text}")
        return "\n".join(lines)

    def bullets(self) -> str:
        lines = []
        for _ in range(self.rng.randint(2, 5)):
            text = self.term() + (f": {self.sentence()}" if self.rng.random() < 0.6 else "")
            self.words += len(text.split())
            lines.append(f"- {text}")
        return "\n".join(lines)

    def code(self) -> str:
        lang = self.topic.code or "text"
        term = self.rng.choice(self.topic.terms)
        ident = "_".join(w for w in term.lower().replace("-", " ").split() if w.isalnum())[:30]
        n = self.rng.randint(2, 500)
        body = {
            "sql": f"select id, created_at\nfrom {ident or 'events'}\n"
                   f"where created_at > now() - interval '{n} days'\norder by created_at desc;",
            "python": f"def check_{ident or 'value'}(items, limit={n}):\n"
                      f"    \"\"\"{term}\"\"\"\n    return [i for i in items if i.score < limit]",
            "yaml": f"{ident or 'service'}:\n  replicas: {n % 9 + 1}\n  resources:\n"
                    f"    limits:\n      memory: {n}Mi",
            "bash": f"# {term}\nkubectl get pods -n {ident or 'default'} | grep -c Running\n"
                    f"echo \"checked at $(date)\"",
            "json": f'{{"name": "{ident or "item"}", "limit": {n}, "enabled": true}}',
        }.get(lang, term)
        self.words += len(body.split())
        return f"```{lang}\n{body}\n```"


# Notes


@dataclass(frozen=True)
class Plan:
    """A note to write: where, in which language, about what, and how long."""

    path: str
    title: str
    korean: bool
    topic: Topic
    other: Topic
    kind: str
    day: date
    words: int


def _size(rng: random.Random, kind: str, korean: bool) -> int:
    """Target length in English words; Korean notes get 0.6 eojeol per word (a Korean
    eojeol holds a noun and its particle, so a translation has fewer of them)."""
    if kind == "daily":
        words = rng.randint(60, 400)
    elif rng.random() < 0.02:
        words = rng.randint(2500, 7000)
    else:
        words = int(min(1500, max(200, math.exp(rng.gauss(5.85, 0.55)))))
    return int(words * 0.6) if korean else words


def _safe(name: str) -> str:
    return "".join(c for c in name if c not in '\\/:*?"<>|#^[]').strip()


def plan_vault(notes: int, seed: int) -> list[Plan]:
    """The notes of a vault of C{notes} notes (paths unique, deterministic)."""
    rng = random.Random(seed)
    start = date(2018, 1, 1)
    n_daily = notes // 4
    plans: list[Plan] = []
    used: set[str] = set()
    for i in range(notes):
        topic, other = rng.choice(TOPICS), rng.choice(TOPICS)
        korean = rng.random() < 0.3
        if i < n_daily:
            day = start + timedelta(days=i)
            kind, title = "daily", day.isoformat()
            path = f"daily/{title}.md"
        else:
            day = start + timedelta(days=rng.randrange(max(1, n_daily)))
            kind = rng.choices(("meeting", "project", "topic", "people", "inbox"),
                               (27, 27, 34, 6, 6))[0]
            path, title = _place(rng, kind, korean, topic, day)
        base, n = path, 2
        while path.lower() in used:
            path = base[:-3] + f" {n}.md"
            n += 1
        used.add(path.lower())
        if path != base:
            title = f"{title} {n - 1}"
        plans.append(Plan(path, title, korean, topic, other, kind, day,
                          _size(rng, kind, korean)))
    return plans


def _place(rng: random.Random, kind: str, korean: bool, topic: Topic,
           day: date) -> tuple[str, str]:
    if kind == "meeting":
        if korean:
            title = f"{day} {topic.ko_title} {rng.choice(('회의', '주간 회의', '회의록', '논의'))}"
            return f"회의/{day.year}/{_safe(title)}.md", title
        title = f"{day} {topic.title} {rng.choice(('sync', 'review', 'meeting', 'kickoff'))}"
        return f"meetings/{day.year}/{_safe(title)}.md", title
    if kind == "project":
        edition = rng.choice(("v2", "migration")) if topic.tech else str(day.year)
        if korean:
            title = f"{topic.ko_title} {rng.choice(KO_SUFFIXES)}"
            folder = f"{topic.ko_title} {'개편' if topic.tech else day.year}"
            return f"프로젝트/{_safe(folder)}/{_safe(title)}.md", title
        title = f"{topic.title} {rng.choice(EN_SUFFIXES)}"
        return f"projects/{_safe(topic.title + ' ' + edition)}/{_safe(title)}.md", title
    if kind == "people":
        who = rng.choice(KO_PEOPLE if korean else PEOPLE)
        title = f"{who} 1on1" if not korean else f"{who} 면담"
        return f"people/{_safe(title)}.md", title
    if kind == "inbox":
        title = (f"{topic.ko_title} {rng.choice(KO_SUFFIXES)}" if korean
                 else f"{topic.title} {rng.choice(EN_SUFFIXES)}")
        return f"inbox/{_safe(title)}.md", title
    area = "work" if topic.tech or topic.key in {"hiring", "onboarding", "planning", "retro",
                                                 "support", "marketing", "vendor", "wiki",
                                                 "one_on_one"} else "personal"
    if korean:
        title = f"{topic.ko_title} {rng.choice(KO_SUFFIXES)}"
        return f"주제/{'업무' if area == 'work' else '개인'}/{_safe(title)}.md", title
    title = f"{topic.title} {rng.choice(EN_SUFFIXES)}"
    return f"topics/{area}/{_safe(title)}.md", title


def render(plan: Plan, rng: random.Random, titles: Sequence[str]) -> str:
    """The Markdown text of one planned note."""
    w = Writer(rng, plan.topic, plan.other, plan.korean, titles)
    parts: list[str] = []
    tags = sorted({plan.topic.key.replace("_", "-"), plan.kind}
                  | ({plan.other.key.replace("_", "-")} if rng.random() < 0.3 else set()))
    if rng.random() < 0.5 or plan.kind == "meeting":
        fm = [f"title: {json.dumps(plan.title, ensure_ascii=False)}",
              f"tags: [{', '.join(tags)}]", f"date: {plan.day.isoformat()}"]
        if rng.random() < 0.2:
            fm.append(f"status: {rng.choice(('draft', 'active', 'done'))}")
        parts.append("---\n" + "\n".join(fm) + "\n---")
    if plan.kind == "daily" or rng.random() < 0.6:
        parts.append(f"# {plan.title}")
    headings = KO_HEADINGS if plan.korean else EN_HEADINGS
    if plan.kind == "daily":
        parts.append(("## 할 일" if plan.korean else "## Tasks") + "\n" + w.tasks())
        parts.append("## 기록" if plan.korean else "## Log")
    elif plan.kind == "meeting":
        who = rng.sample(KO_PEOPLE if plan.korean else PEOPLE, 3)
        parts.append(("참석자: " if plan.korean else "Attendees: ") + ", ".join(who))
    while w.words < plan.words:
        if plan.kind != "daily" and rng.random() < 0.45:
            level = "###" if rng.random() < 0.25 else "##"
            heading = rng.choice(headings)
            if rng.random() < 0.5:
                heading += " - " + w.term()
            parts.append(f"{level} {heading}")
            w.words += len(heading.split())
        roll = rng.random()
        if roll < 0.55:
            parts.append(w.paragraph())
        elif roll < 0.72:
            parts.append(w.tasks())
        elif roll < 0.87:
            parts.append(w.bullets())
        elif roll < 0.93 and plan.topic.tech:
            parts.append(w.code())
        else:
            parts.append(w.paragraph() + f" #{plan.topic.key.replace('_', '-')}")
    if rng.random() < 0.4:
        parts.append(("관련: " if plan.korean else "Related: ")
                     + ", ".join(w.link() for _ in range(rng.randint(1, 3))))
    return "\n\n".join(parts) + "\n"


def generate(out: Path, notes: int, seed: int) -> dict[str, object]:
    """Write the vault; return its manifest (also stored in C{out/.vaultgen.json})."""
    plans = plan_vault(notes, seed)
    titles = [p.title for p in plans]
    total_words = total_bytes = 0
    korean = 0
    for i, plan in enumerate(plans):
        rng = random.Random(f"{seed}:{i}")  # each note independent of the others' sizes
        text = render(plan, rng, titles)
        path = out / plan.path
        path.parent.mkdir(parents=True, exist_ok=True)
        data = text.encode("utf-8")
        path.write_bytes(data)
        total_words += len(text.split())
        total_bytes += len(data)
        korean += plan.korean
    manifest: dict[str, object] = {
        "generator": "bench/vaultgen.py", "version": VERSION, "notes": notes, "seed": seed,
        "korean_notes": korean, "words": total_words, "bytes": total_bytes}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def read_manifest(out: Path) -> dict[str, object] | None:
    try:
        found = json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def ensure_vault(out: Path, notes: int, seed: int) -> dict[str, object]:
    """Generate C{out} unless it already holds this exact vault (a cache)."""
    found = read_manifest(out)
    if found is not None and (found.get("version"), found.get("notes"),
                              found.get("seed")) == (VERSION, notes, seed):
        return found
    if out.exists() and any(out.iterdir()):
        import shutil

        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    return generate(out, notes, seed)


def latency_queries(n: int, seed: int) -> list[str]:
    """C{n} search queries in the vaults' vocabulary (70 % English, 30 % Korean)."""
    rng = random.Random(f"queries:{seed}")
    out = []
    for _ in range(n):
        topic = rng.choice(TOPICS)
        if rng.random() < 0.3:
            words = rng.sample(topic.ko_terms, min(len(topic.ko_terms), rng.randint(1, 2)))
            out.append(" ".join(words) if rng.random() < 0.6
                       else f"{josa(words[0], '을/를')} {rng.choice(topic.ko_actions)}하는 방법")
        else:
            kind = rng.random()
            if kind < 0.5:
                out.append(" ".join(rng.sample(topic.terms, rng.randint(1, 2))))
            elif kind < 0.8:
                out.append(f"how do we {rng.choice(topic.actions)}")
            else:
                out.append(f"{rng.choice(topic.terms)} {rng.choice(PEOPLE)}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder to create (must be empty or absent)")
    parser.add_argument("--notes", type=int, default=2000, help="number of notes (default 2000)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    args = parser.parse_args(argv)
    if args.notes < 1:
        parser.error("--notes must be positive")
    if args.out.exists() and any(args.out.iterdir()):
        parser.error(f"{args.out} is not empty")
    args.out.mkdir(parents=True, exist_ok=True)
    manifest = generate(args.out, args.notes, args.seed)
    print(json.dumps(manifest, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
