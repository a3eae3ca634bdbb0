"""Hand-marked sentence boundaries for tricky financial text.

These cases measure a sentence segmenter on the sort of input a financial
sentiment model sees: press releases, earnings-call transcripts, 10-K filings,
news wires, bullet lists and FinancialPhraseBank-style tokenised sentences
(including the model card's example). All companies, people and most
institutions are invented; the Ahlstrom text is the model card's example and is
copied exactly.

Marker convention
-----------------
Each entry of ``CASES`` is ``(kind, marked_text)``. ``marked_text`` is the input
exactly as a segmenter would receive it (newlines, bullets, all-caps headers,
quotes, spacing before full stops and so on). ``BOUNDARY`` (U+2016, the
character "‖") is inserted immediately before the first character of every
sentence except the first, i.e. after whatever whitespace or newline separates
it from the previous sentence. It appears nowhere else. Removing every
``BOUNDARY`` gives back the original text (see ``unmarked``), and
``gold_starts`` gives the offsets of those sentence starts in that text.

A "sentence" is a unit a human would score for sentiment on its own:

* Abbreviations (Corp., Inc., Ltd., Co., U.S., approx., No., Mr., Dr., vs.,
  e.g., i.e., Jan., p.m. ...), decimals, dates, times, amounts and tickers do not
  end sentences. An abbreviation that is also the last word of a sentence
  ("... revenue in the U.S. The remainder ...") does end it.
* A header that ends its line (all-caps headers, "Item 7. ...", "Highlights",
  an intro line ending in a colon) is its own sentence. A header that runs into
  the first sentence on the same line with no punctuation (the Ahlstrom case)
  is not split off.
* Each bullet item ("- ", "• ", "* ", "1. ", "(a) ") is its own sentence, and
  the boundary goes before the bullet marker. A bullet holding two full
  sentences is split between them.
* A transcript speaker label belongs to the first sentence of the turn; a new
  speaker line starts a new sentence.
* '..." said X.' is one sentence; '"... ." The company added ...' is two.
  Sentences inside a multi-sentence quotation are split.
* Questions and exclamations end sentences.
"""

BOUNDARY = "\u2016"

KINDS = (
    "press release",
    "transcript",
    "filing",
    "news",
    "card example",
    "bullets",
    "mixed",
)

CASES: list[tuple[str, str]] = [
    # ------------------------------------------------------------------
    # Model card example: verbatim, alone and extended.
    (
        "card example",
        "Ahlstrom Corporation STOCK EXCHANGE ANNOUNCEMENT 7.2.2007 at 10.30 A total of 56,955 new shares of Ahlstrom Corporation have been subscribed with option rights under the company's stock option programs I / 2004 and II / 2004 .",
    ),
    (
        "card example",
        "Ahlstrom Corporation STOCK EXCHANGE ANNOUNCEMENT 7.2.2007 at 10.30 A total of 56,955 new shares of Ahlstrom Corporation have been subscribed with option rights under the company's stock option programs I / 2004 and II / 2004 . ‖The new shares have been entered in the Trade Register today and will be traded together with the old shares as of 8.2.2007. ‖After the registration, the total number of shares in the company amounts to 46,727,155.",
    ),
    # ------------------------------------------------------------------
    (
        "press release",
        'Helvara Technologies Inc. (NASDAQ: HLVR) today reported third-quarter 2024 revenue of $412.6 million, up 18% year over year. ‖GAAP diluted EPS was $2.11 vs. $1.90 in Q3 2023. ‖"We delivered another quarter of disciplined growth," said Maria Okafor, Chief Executive Officer. ‖The company raised its full-year revenue outlook to approx. $1.62 billion.',
    ),
    (
        "press release",
        'BOSTON, Feb. 12, 2025 /PRNewswire/ -- Quillmark Therapeutics, Inc. (Nasdaq: QLMK), a clinical-stage biotechnology company, today announced that the U.S. Food and Drug Administration has accepted its New Drug Application for QM-204. ‖The FDA has assigned a PDUFA target action date of Oct. 30, 2025. ‖"This acceptance is an important milestone for patients," said Helen Marsh, Ph.D., President and Chief Executive Officer of Quillmark. ‖The company will host a conference call at 8:30 a.m. ET today.',
    ),
    (
        "news",
        "Shares of Brantwell Co. fell 7.4% on Tuesday after the U.S. retailer cut its annual profit forecast. ‖The company now expects earnings of $3.10 to $3.25 per share, down from a prior range of $3.60 to $3.80. ‖Analysts at Kessler & Moor had expected $3.52, according to Marlow Data.",
    ),
    (
        "transcript",
        """\
Operator: Good morning, and welcome to the Norvik Systems fourth-quarter 2023 earnings call. ‖All participants are in listen-only mode.
‖Daniel Reyes -- Chief Executive Officer: Thanks, operator. ‖Revenue grew 12% to $318 million. ‖Our backlog hit a record.
‖Priya Natarajan -- Chief Financial Officer: Thank you, Dan. ‖Gross margin expanded 140 basis points to 61.3%.""",
    ),
    (
        "filing",
        """\
Item 1A. Risk Factors
‖Our business is subject to numerous risks. ‖If any of the following risks occur, our results of operations could be materially adversely affected. ‖You should consider these risks carefully before investing in our common stock.""",
    ),
    (
        "bullets",
        """\
Highlights for the quarter:
‖- Net sales increased 9% to EUR 245.3 mn
‖- Operating profit was EUR 31.0 mn (EUR 27.4 mn)
‖- Earnings per share rose to EUR 0.42
‖- Cash flow from operations remained strong""",
    ),
    (
        "news",
        'The Bank of Estmark raised its benchmark rate by 25 basis points to 4.50% on Wednesday, its third increase this year. ‖Governor Anneli Vesterby said inflation remained "uncomfortably high" at 5.1% in Sept. ‖Most economists polled by Nordpress had expected the move. ‖The krone strengthened 0.6% vs. the euro after the decision.',
    ),
    (
        "mixed",
        """\
FORWARD-LOOKING STATEMENTS
‖This press release contains forward-looking statements within the meaning of the Private Securities Litigation Reform Act of 1995. ‖Words such as "expect," "anticipate," "intend," "plan," and "believe" identify such statements. ‖Actual results may differ materially from those expressed or implied. ‖Tessaro Corp. undertakes no obligation to update any forward-looking statement.""",
    ),
    (
        "press release",
        "The Board of Directors of Calloway Brands plc has declared an interim dividend of 12.4p per share (2023: 11.8p). ‖The dividend will be paid on 15 Nov. 2024 to shareholders on the register at the close of business on 18 Oct. 2024. ‖The ex-dividend date is 17 Oct. 2024.",
    ),
    (
        "news",
        "Mr. Ortega, who joined Fenwick & Co. in Jan. 2019 from Pallas Capital Ltd., will oversee the U.S. and U.K. businesses from the firm's St. Louis office, effective approx. 1 July.",
    ),
    (
        "news",
        "Roughly 70% of Drummond Foods' revenue is generated in the U.S. ‖The remainder comes mainly from Canada and the U.K. ‖Management expects that mix to shift toward Europe by 2027.",
    ),
    (
        "press release",
        "Velora Group Oyj and Harmaja Systems Oyj have signed a combination agreement to merge the two companies. ‖Under the agreement, Harmaja shareholders will receive 0.85 new Velora shares for each share held. ‖The offer values Harmaja at approx. EUR 1.2 bn, a premium of 31.5% to the closing price on 3.4.2024. ‖The transaction is expected to close in Q3 2024, subject to regulatory approvals. ‖Velora expects annual cost synergies of EUR 45–50 mn.",
    ),
    (
        "transcript",
        """\
Operator: Our next question comes from Laura Chen with Brightwater Securities. ‖Please go ahead.
‖Laura Chen -- Brightwater Securities -- Analyst: Hi, thanks for taking my question. ‖Can you talk about pricing in the fourth quarter? ‖Did you see any pushback from large customers?
‖Tom Wrexham -- Chief Executive Officer: Sure, Laura. ‖We took price in October, and so far retention has held up well. ‖Honestly, we haven't seen meaningful pushback.""",
    ),
    (
        "filing",
        """\
Item 7. Management's Discussion and Analysis of Financial Condition and Results of Operations
‖The following discussion should be read in conjunction with our consolidated financial statements and related notes included in Item 8 of this Annual Report on Form 10-K. ‖Net revenue for fiscal 2024 was $2.84 billion, an increase of 6.3% compared with fiscal 2023. ‖The increase was primarily driven by higher volumes in our Industrial segment, partially offset by unfavorable foreign currency impacts of approx. $41.0 million.""",
    ),
    (
        "bullets",
        """\
Outlook for 2025
‖• Net sales expected to grow 4–6% in comparable currencies
‖• Adjusted EBITA margin of 14.0% to 15.0%
‖• Capital expenditure of approx. EUR 90 mn
‖• Dividend policy unchanged""",
    ),
    (
        "news",
        '"We are pleased with the progress of our turnaround plan." ‖The company added that it had exited three unprofitable markets during the quarter. ‖"There is more work to do," Chief Executive Officer Mark Ellison told analysts.',
    ),
    (
        "bullets",
        """\
The Board proposes the following to the Annual General Meeting:
‖1. A dividend of EUR 0.65 per share for the financial year 2024
‖2. Authorisation to repurchase up to 5,000,000 own shares
‖3. Re-election of Ms. Kaisa Lind and Mr. Jorma Aalto to the Board
‖4. Election of Grantley & Partners Oy as auditor""",
    ),
    (
        "filing",
        """\
We may be unable to pay dividends in the future because, among other things:
‖(a) our subsidiaries may be restricted from distributing cash to us under the terms of their credit agreements;
‖(b) we may incur losses or fail to generate sufficient cash flow; and
‖(c) our Board of Directors may decide to retain earnings for growth.""",
    ),
    (
        "news",
        "Ostrava Steel, the No. 2 producer in the region, said on Monday it would idle its blast furnace No. 3 for six weeks. ‖The company cited weak demand from automakers and high energy costs. ‖Its shares were down 2.3% at 1:15 p.m. in Prague. ‖A spokesperson declined to comment on possible job cuts.",
    ),
    (
        "transcript",
        "What a quarter! ‖Record bookings of $1.1 billion, and we're just getting started. ‖Thank you all for joining us today.",
    ),
    (
        "press release",
        """\
Kestrel Marine Oyj Interim Report January–September 2024
‖July–September 2024 in brief
‖- Order intake increased 22% to EUR 412.7 mn (EUR 338.1 mn)
‖- Net sales decreased 3% to EUR 356.0 mn (EUR 367.2 mn)
‖- Comparable operating profit was EUR 28.4 mn (EUR 31.9 mn), or 8.0% of net sales
‖- Earnings per share were EUR 0.31 (EUR 0.36)
‖- Cash flow from operating activities was EUR 44.1 mn (EUR 12.6 mn)
‖President and CEO Anna Rautio: "Demand in the cruise segment recovered strongly during the quarter. ‖Our order backlog stood at a record EUR 1.9 bn at the end of September. ‖Profitability was burdened by cost inflation in two legacy projects, which will be completed by the end of the year."
‖Outlook unchanged
‖Kestrel Marine expects its comparable operating profit for 2024 to be in the range of EUR 110–130 mn. ‖The outlook assumes no major disruptions in the supply chain.""",
    ),
    (
        "transcript",
        """\
Operator: Good afternoon. ‖My name is Sarah, and I will be your conference operator today. ‖At this time, I would like to welcome everyone to the Pinecrest Software third-quarter fiscal 2025 earnings call.
‖Jacob Lindgren -- Vice President, Investor Relations: Thank you. ‖With me today are Rachel Cole, our CEO, and Anand Mehta, our CFO. ‖Before we begin, let me remind you that today's remarks include forward-looking statements. ‖Please refer to our Form 10-K for a discussion of risk factors.
‖Rachel Cole -- Chief Executive Officer: Thanks, Jacob, and good afternoon, everyone. ‖Q3 was a strong quarter. ‖Total revenue was $512 million, up 21% y/y, and non-GAAP operating margin reached 24.5%. ‖We added 310 customers with more than $100,000 in ARR. ‖Net revenue retention was 118%, i.e., roughly flat vs. last quarter.
‖Anand Mehta -- Chief Financial Officer: Thanks, Rachel. ‖For Q4, we expect revenue of $530 million to $535 million.""",
    ),
    (
        "news",
        "Corvane Ratings cut Delmont Utilities Co.'s senior unsecured rating to Baa3 from Baa2 on Friday, citing rising leverage. ‖The outlook is negative. ‖Delmont said it remains committed to an investment-grade profile and plans to sell approx. $600 million of non-core assets by year-end.",
    ),
    (
        "filing",
        """\
Item 1A. Risk Factors
‖Risks Related to Our Business
‖We depend on a limited number of customers for a substantial portion of our revenue. ‖For the fiscal year ended Dec. 31, 2024, our ten largest customers accounted for approx. 58% of net sales, and Halvorsen Retail Co. alone accounted for 17%. ‖The loss of, or a significant reduction in orders from, any of these customers could adversely affect our results. ‖Changes in U.S. trade policy, including tariffs on imported components, could increase our costs. ‖We source approx. 40% of our components from suppliers in Asia, e.g., printed circuit boards and displays.""",
    ),
    (
        "mixed",
        "Valkama Paper Oyj STOCK EXCHANGE RELEASE 14.3.2024 at 9.00 EET Valkama Paper Oyj has completed the divestment of its label materials business to Corran Packaging Ltd. ‖The debt-free purchase price was EUR 142 mn. ‖The divestment will generate a capital gain of approx. EUR 38 mn, which will be reported in the first quarter.",
    ),
    (
        "mixed",
        """\
STOCK EXCHANGE RELEASE 21.5.2024 at 15.00
‖Halden Group Oyj's Annual General Meeting held today approved the financial statements for 2023 and discharged the members of the Board and the CEO from liability. ‖The AGM decided to pay a dividend of EUR 0.48 per share. ‖The dividend will be paid in two instalments of EUR 0.24 each.""",
    ),
    (
        "press release",
        'Marston Industrial Inc. (NYSE: MSI) today lowered its fiscal 2025 guidance. ‖The company now expects adjusted EPS of $4.05 to $4.25, compared with its previous outlook of $4.60 to $4.80. ‖Organic sales are expected to decline 2% to 4%. ‖"Destocking in our distribution channel has persisted longer than we anticipated," said Chairman and CEO Robert J. Hale. ‖"We are taking decisive action to reduce costs." ‖The company will discuss the outlook on a call at 10 a.m. ET.',
    ),
    (
        "card example",
        "Finnish Kelora Oyj 's net sales decreased to EUR 193.3 mn from EUR 241.1 mn in the corresponding period . ‖Operating profit rose to EUR 13.1 mn from EUR 8.7 mn , representing 6.8 % of net sales . ‖The company 's order backlog was EUR 96 mn at the end of the period .",
    ),
    (
        "card example",
        "According to CEO Matti Harjula , the company 's market position strengthened in all its main markets . ‖In Russia , sales grew by 28 % .",
    ),
    (
        "news",
        "iNorra Ltd. shares jumped 14% in early trading. ‖eVolt, its electric-vehicle charging unit, reported a 60% rise in installed chargers. ‖Investors had been waiting for signs that the unit could turn a profit.",
    ),
    (
        "news",
        "2024 was a record year for Ravensdale Bank. ‖Net interest income rose 9.4% to £2.31bn. ‖3.2 million new customers opened accounts, up from 2.7 million a year earlier.",
    ),
    (
        "transcript",
        """\
Unidentified Analyst: Just a quick follow-up on margins. ‖Is the 50 basis points of dilution from the acquisition a one-time item, or should we model it into 2026 as well?
‖Claire Dubois -- Chief Financial Officer: It's mostly one-time. ‖We expect the bulk of it to roll off by mid-2025. ‖I'd model maybe 10 to 15 basis points of residual dilution next year.""",
    ),
    (
        "press release",
        "Orinoco Energy Partners, L.P. (NYSE: OEP) today announced a quarterly cash distribution of $0.6850 per common unit, or $2.74 on an annualized basis, payable on Nov. 14, 2024, to unitholders of record as of Nov. 7, 2024.",
    ),
    (
        "news",
        'The Monetary Authority of Caravel held its policy rate at 5.25% on Thursday, as expected. ‖In its statement, the authority said risks to the inflation outlook were "broadly balanced." ‖Governor Ruth Amadi told reporters that cuts were "not on the table for now." ‖Markets trimmed bets on easing this year. ‖Two-year government bond yields rose 8 basis points to 4.61%. ‖The next policy meeting is scheduled for Dec. 11–12.',
    ),
    (
        "mixed",
        """\
The full report is available at www.tessaro-corp.com/investors. ‖For further information, please contact:
‖Mikael Strand, CFO, tel. +358 40 123 4567, mikael.strand@tessaro-corp.com""",
    ),
    (
        "bullets",
        """\
Key risks flagged by management:
‖* Slower loan growth in the commercial real estate book
‖* Higher deposit costs, i.e. continued migration to term deposits
‖* Potential regulatory changes following the Basel III endgame proposal""",
    ),
    (
        "filing",
        """\
Item 7A. Quantitative and Qualitative Disclosures About Market Risk
‖We are exposed to market risk from changes in interest rates and foreign currency exchange rates. ‖A hypothetical 100 basis point increase in interest rates would have increased our interest expense by approx. $8.2 million for the year ended Dec. 31, 2024. ‖We do not use derivative financial instruments for speculative or trading purposes.""",
    ),
    (
        "news",
        "Gardner-Pike Holdings agreed to buy rival Ellesmere Tools Inc. for $38.50 per share in cash, or about $2.7 billion including debt. ‖The price represents a 27% premium vs. Ellesmere's closing price on Friday. ‖Ellesmere shares surged 24% to $36.80 in premarket trading. ‖The deal, which has been approved by both boards, is expected to close in the first half of 2025.",
    ),
    (
        "press release",
        "Larchmont Health Corp. today announced the appointment of Dr. Nadia Ferreira as Chief Medical Officer, effective Jan. 6, 2025. ‖Dr. Ferreira most recently served as Senior Vice President of Clinical Development at Otterbrook Pharma, Inc. ‖She succeeds Ms. Joan Whitaker, who is retiring after 14 years with the company.",
    ),
    (
        "transcript",
        "Operator: Thank you. ‖That concludes today's conference call. ‖You may now disconnect.",
    ),
    (
        "mixed",
        """\
FINANCIAL HIGHLIGHTS
‖Fourth quarter 2024 compared with fourth quarter 2023:
‖- Revenue of $1.04 billion, up 7%
‖- GAAP net income of $88.1 million, or $1.12 per diluted share
‖- Adjusted EBITDA of $214.5 million, up 11%
‖Full year 2024 compared with full year 2023:
‖- Revenue of $3.96 billion, up 5%
‖- Free cash flow of $402 million""",
    ),
    (
        "news",
        "Is the housing slowdown finally over? ‖New home sales in Westmarch rose 6.2% in October to a seasonally adjusted annual rate of 712,000 units, the statistics office said. ‖Economists had forecast a 1.5% gain. ‖Mortgage rates have eased to around 6.4% from a peak of 7.8% in Oct. 2023.",
    ),
    (
        "filing",
        """\
Item 3. Legal Proceedings
‖On March 4, 2024, a putative class action captioned Barnes v. Quintrell Networks, Inc., No. 3:24-cv-01187, was filed in the U.S. District Court for the Northern District of California. ‖The complaint alleges violations of Sections 10(b) and 20(a) of the Securities Exchange Act of 1934. ‖We believe the claims are without merit and intend to defend ourselves vigorously. ‖See Note 12, "Commitments and Contingencies," for additional information.""",
    ),
    (
        "card example",
        "The company 's share capital is EUR 1,246,000 and it has 12,460,000 shares . ‖In the third quarter of 2008 , the company 's net loss narrowed to EUR 0.6 mn ( EUR 2.1 mn ) .",
    ),
    (
        "bullets",
        """\
Third-quarter priorities were clear:
‖1. Protect margins.
‖2. Reduce working capital by at least $50 million.
‖3. Complete the integration of Brookfell Ltd. by year-end.
‖We delivered on all three.""",
    ),
    (
        "press release",
        "Nordhaven Bank plc announces that on 12 March 2024 it purchased 1,250,000 of its ordinary shares of 10p each at a volume-weighted average price of 287.45p per share. ‖The purchased shares will be cancelled. ‖Following the cancellation, the company's issued share capital will consist of 3,412,887,104 ordinary shares. ‖This announcement was released at 7.00 a.m. GMT.",
    ),
    (
        "news",
        '"The market has clearly overreacted," Mr. Halloran said in an interview. ‖"Our fundamentals haven\'t changed." ‖He added that the company would consider buying back stock if the shares stayed below $20.',
    ),
    (
        "mixed",
        'FRANKFURT (Nordpress) - Adler-Kraft AG on Tuesday reported a 14% drop in third-quarter adjusted operating profit, hurt by weak demand in China and higher restructuring costs. ‖Adjusted EBIT fell to EUR 612 mn from EUR 711 mn a year earlier, slightly below the EUR 630 mn analysts had expected on average. ‖Revenue slipped 3.1% to EUR 9.84 bn. ‖"The environment remains challenging," Chief Executive Jens Voller said. ‖"But we are confident in our cost measures." ‖The company confirmed its full-year guidance. ‖It still expects an adjusted EBIT margin of 6% to 7%. ‖Adler-Kraft also said it would cut approx. 2,800 jobs worldwide by the end of 2026, i.e. about 4% of its workforce. ‖Labour representatives criticised the plans. ‖Shares in the company rose 2.2% by 0920 GMT. ‖They have lost nearly a fifth of their value this year.',
    ),
    (
        "transcript",
        """\
Mark Feldstein -- Harrow & Co. -- Analyst: Thanks. ‖Two questions, if I may. ‖First, what's embedded in the guide for FX? ‖And second, how should we think about capex in fiscal '26?
‖Linda Park -- Chief Financial Officer: Sure. ‖The guide assumes current rates, so roughly a 1.5-point headwind. ‖On capex, we expect approx. 4% of revenue, consistent with fiscal '25.""",
    ),
    (
        "filing",
        """\
Liquidity and Capital Resources
‖As of Sept. 30, 2024, we had cash and cash equivalents of $384.2 million. ‖We also had $500.0 million of undrawn capacity under our revolving credit facility, which matures in Oct. 2028. ‖We believe our existing cash, together with cash generated from operations, will be sufficient to meet our needs for at least the next 12 months. ‖During fiscal 2024, we repurchased 1.9 million shares for $142.6 million. ‖Our Board of Directors declared a quarterly dividend of $0.27 per share on Nov. 5, 2024.""",
    ),
    (
        "news",
        "Input costs rose across the board: steel, resin, freight, energy, etc. ‖Management said it would pass most of the increase on to customers in the second half.",
    ),
    (
        "press release",
        '"What a milestone!" said founder Eva Lindholm as Bramble Foods Ltd. crossed 1 million subscribers. ‖The company said subscriber growth accelerated to 34% in H1 2024. ‖It is now targeting EBITDA break-even in Q2 2025.',
    ),
    (
        "transcript",
        """\
Q: How much of the revenue increase came from pricing? ‖A: About two-thirds. ‖The rest was volume, mostly in North America.
‖Q: Will you keep the dividend at $1.20? ‖A: Yes. ‖The Board has no plans to change the payout.""",
    ),
    (
        "filing",
        'The Company\'s 4.375% Senior Notes due 2029 (the "2029 Notes") were issued under an indenture dated as of Feb. 14, 2021, among the Company, the guarantors named therein and Calder Trust Bank, N.A., as trustee.',
    ),
    (
        "news",
        "Stocks in Meridia closed higher on Friday, led by banks and miners. ‖The benchmark MX-40 index gained 1.3% to 7,842.15 points. ‖Coppergate Mining Corp. rose 5.6% after raising its output forecast, while Lisbury Bank Ltd. added 3.1%. ‖On the downside, telecoms operator Vantel slid 4.2% following a broker downgrade. ‖The index has risen 9.8% so far this year.",
    ),
    (
        "bullets",
        """\
Segment review:
‖- Consumer: Revenue grew 12% to $402 million. ‖Growth was broad-based across regions.
‖- Enterprise: Revenue declined 3% to $188 million. ‖Several large deals slipped into Q1.
‖- Services: Revenue was flat""",
    ),
    (
        "card example",
        "Kivistö Group said its profit before taxes would be clearly lower than in 2007 . ‖The company will publish its financial statements on 12 February 2009 .",
    ),
    (
        "news",
        "Trading in Halcyon Biotech shares was halted at 11.42 a.m. on the Oslo exchange on Wednesday, Feb. 7, pending an announcement about the outcome of its Phase 3 trial.",
    ),
    (
        "press release",
        """\
ABOUT CARVELLA LOGISTICS
‖Carvella Logistics, Inc. (NYSE: CVL) is a leading provider of temperature-controlled freight services in North America. ‖Founded in 1987, the company operates more than 4,200 trucks from 38 terminals. ‖For more information, visit www.carvella.com.""",
    ),
    (
        "transcript",
        """\
Greg Abernathy -- Northline Capital -- Analyst: Okay, and just -- sorry, one more. ‖The 8% organic growth -- does that include the Halberd contract or not?
‖Susan Ng -- President and Chief Executive Officer: It does not. ‖Halberd starts contributing in Q2, so that's upside to the guide.""",
    ),
    (
        "filing",
        """\
Item 5. Market for Registrant's Common Equity, Related Stockholder Matters and Issuer Purchases of Equity Securities
‖Our common stock is listed on the Nasdaq Global Select Market under the symbol "FRLN." ‖As of Feb. 20, 2025, there were approx. 1,140 holders of record of our common stock. ‖We have never declared or paid cash dividends on our common stock.""",
    ),
    (
        "mixed",
        """\
Ostara Renewables plc ("Ostara" or the "Company") is pleased to announce its unaudited results for the six months ended 30 June 2024.
‖Highlights
‖• Revenue up 23% to £186.4m (H1 2023: £151.6m)
‖• Adjusted EBITDA up 31% to £97.2m
‖• Net debt reduced to £412m, i.e. 3.1x annualised EBITDA
‖• Interim dividend of 3.45p per share, up 5%
‖Chair's statement
‖The first half of 2024 was a period of strong operational delivery for Ostara. ‖Generation from our wind portfolio was 9% above budget, helped by favourable weather in Q1. ‖We commissioned two new solar sites in Spain, adding 120 MW of capacity. ‖The Board remains confident in the outlook for the full year.""",
    ),
    (
        "news",
        "Kellan Motors earned $2.11 a share in the quarter vs $1.90 a year ago, beating the $1.98 consensus. ‖Revenue rose 5% to $14.2 billion. ‖The shares rose 3% after hours. ‖Will the momentum last? ‖Some analysts aren't so sure.",
    ),
    (
        "press release",
        "Tanaka Seimitsu Co., Ltd. (TSE: 7781) announced that it will acquire approx. 65% of the shares of Rendall Precision GmbH for JPY 18.5 bn. ‖The acquisition will expand Tanaka's presence in the European automotive market. ‖Closing is expected in Apr. 2025.",
    ),
    (
        "bullets",
        """\
Use of proceeds:
‖(a) repayment of the EUR 250 mn term loan maturing in 2025;
‖(b) general corporate purposes, including bolt-on acquisitions.""",
    ),
    (
        "transcript",
        "Operator: Our next question comes from the line of Ben Ostrowski with Caldwell Partners.",
    ),
    (
        "news",
        "The deal still needs approval from the U.K. Competition and Markets Authority. ‖A decision is expected by Jan. 31. ‖Neither company commented on reports that a third bidder, Farnham Holdings plc, was considering a rival offer.",
    ),
    (
        "filing",
        "Cost of revenue increased $23.4 million, or 8%, primarily due to higher freight costs. ‖(Freight costs are discussed further below.) ‖Gross margin was 41.2% compared with 42.9% in the prior year.",
    ),
]


def unmarked(case: str) -> str:
    """Return the original text of a marked case (all BOUNDARY markers removed)."""
    return case.replace(BOUNDARY, "")


def gold_starts(case: str) -> list[int]:
    """Offsets, in ``unmarked(case)``, where each sentence after the first starts."""
    starts: list[int] = []
    removed = 0
    for i, ch in enumerate(case):
        if ch == BOUNDARY:
            starts.append(i - removed)
            removed += 1
    return starts


if __name__ == "__main__":
    problems: list[str] = []
    sentences = 0
    per_kind: dict[str, int] = {}
    for n, (kind, case) in enumerate(CASES):
        where = f"case {n} ({kind}): {case[:50]!r}"
        if kind not in KINDS:
            problems.append(f"{where}: unknown kind")
        if not case or case.startswith(BOUNDARY) or case.endswith(BOUNDARY):
            problems.append(f"{where}: BOUNDARY at the very start or end")
        if BOUNDARY * 2 in case:
            problems.append(f"{where}: adjacent BOUNDARY markers")
        for i, ch in enumerate(case):
            if ch != BOUNDARY:
                continue
            if i + 1 < len(case) and case[i + 1].isspace():
                problems.append(f"{where}: BOUNDARY followed by whitespace at {i}")
            if i > 0 and not case[i - 1].isspace():
                problems.append(f"{where}: BOUNDARY not preceded by whitespace at {i}")
        text = unmarked(case)
        starts = gold_starts(case)
        rebuilt = text
        for s in reversed(starts):
            rebuilt = rebuilt[:s] + BOUNDARY + rebuilt[s:]
        if rebuilt != case:
            problems.append(f"{where}: gold_starts does not round-trip")
        sentences += len(starts) + 1
        per_kind[kind] = per_kind.get(kind, 0) + 1
    if len(CASES) < 64:
        problems.append(f"only {len(CASES)} cases, need at least 64")
    if problems:
        print("\n".join(problems))
        raise SystemExit(1)
    print(f"cases: {len(CASES)}")
    print(f"sentences: {sentences}")
    print("per kind: " + ", ".join(f"{k}={v}" for k, v in sorted(per_kind.items())))
