"""Query texts of the fine-tuning tasks, verbatim from the mPMR reference code, and the rule that
picks one per language.

Source: github.com/DAMO-NLP-SG/PMR at commit e2ca84ba71c3076b593d77db897d5b7584ccc536 (the file
is named beside each table). These strings are data the results depend on: never edit them.

* NER / ABSA: one query per label, `"LABEL". description` (`label_query`, as PMR's
  NER/mNER/data.py and ABSA/mABSA/data.py build it). The reference evaluates each language with
  the description translated into that language (its `{lang}-mrc-ner.test` /
  `{lang}-mrc-absa.test` files are written with that language's table) and trains on English.
  `tagging_queries(kind, lang)` returns that language's queries, or the English ones (and says
  so) where the reference has no translation of every label.
* Sentence pairs: the context is `"Hypothesis: " + sentence1 + " Premise: " + sentence2` and the
  label queries are English for every language (PMR NLI/mNLI/data.py).

Never imports torch, transformers or DeepSpeed.
"""

from __future__ import annotations

TAGGING_KINDS = ("wikiann", "conll", "absa")
PAIR_KINDS = ("pawsx", "xnli")


def label_query(label: str, description: str) -> str:
    """`"LABEL". description` — PMR NER/mNER/data.py, ABSA/mABSA/data.py:
    `'"{}". {}'.format(label, details)`."""
    return f'"{label}". {description}'


# PMR NER/Data/wikiann2mrc.py, conll2mrc(): `label_details` per language (WikiAnn has ORG, PER,
# LOC). The CoNLL test file of es (NER/Data/conll/es-mrc-ner.test) carries the same es texts.
NER_DESCRIPTIONS: dict[str, dict[str, str]] = {
    "en": {
        "ORG": "Organization entities are limited to named corporate, governmental, or other organizational entities.",
        "PER": "Person entities are named persons or family.",
        "LOC": "Location entities are the name of politically or geographically defined locations such as cities, provinces, countries, international regions, bodies of water, mountains, etc.",
    },
    "nl": {
        "ORG": "Organisatie-entiteiten zijn beperkt tot genoemde bedrijfs-, overheids- of andere organisatorische entiteiten.",
        "PER": "Persoon entiteiten zijn genoemde personen of familie.",
        "LOC": "Locatie-entiteiten zijn de naam van politiek of geografisch gedefinieerde locaties zoals steden, provincies, landen, internationale regio's, waterlichamen, bergen, enz.",
    },
    "de": {
        "ORG": "Organisationseinheiten sind auf benannte Unternehmens-, Regierungs- oder andere Organisationseinheiten beschränkt.",
        "PER": "Personeneinheiten sind benannte Personen oder Familien.",
        "LOC": "Ortseinheiten sind die Namen politisch oder geografisch definierter Orte wie Städte, Provinzen, Länder, internationale Regionen, Gewässer, Berge usw.",
    },
    "es": {
        "ORG": "Las entidades organizativas se limitan a entidades corporativas, gubernamentales u otras entidades organizativas nombradas.",
        "PER": "Las entidades persona son personas nombradas o familia.",
        "LOC": "Las entidades de ubicación son el nombre de ubicaciones definidas política o geográficamente, como ciudades, provincias, países, regiones internacionales, masas de agua, montañas, etc.",
    },
    "vi": {
        "ORG": "Các thực thể tổ chức được giới hạn trong các thực thể công ty, chính phủ hoặc các tổ chức khác được đặt tên.",
        "PER": "Các thực thể cá nhân là những người được đặt tên hoặc gia đình.",
        "LOC": "Thực thể vị trí là tên của các vị trí được xác định về mặt chính trị hoặc địa lý như thành phố, tỉnh, quốc gia, khu vực quốc tế, vùng nước, núi, v.v.",
    },
    "fr": {
        "ORG": "Les entités organisationnelles sont limitées aux entités corporatives, gouvernementales ou autres entités organisationnelles nommées.",
        "PER": "Les entités de personne sont des personnes ou une famille nommées.",
        "LOC": "Les entités de localisation sont le nom de lieux politiquement ou géographiquement définis tels que des villes, des provinces, des pays, des régions internationales, des plans d'eau, des montagnes, etc.",
    },
    "it": {
        "ORG": "Le entità dell'organizzazione sono limitate a entità aziendali, governative o di altro tipo nominate.",
        "PER": "Le entità persona sono persone nominate o familiari.",
        "LOC": "Le entità di localizzazione sono il nome di località definite politicamente o geograficamente come città, province, paesi, regioni internazionali, specchi d'acqua, montagne, ecc.",
    },
    "ja": {
        "ORG": "組織エンティティは、指定された企業、政府、またはその他の組織エンティティに限定されます。",
        "PER": "個人エンティティは、名前付きの個人または家族です。",
        "LOC": "ロケーション エンティティは、都市、州、国、国際地域、水域、山など、政治的または地理的に定義された場所の名前です。",
    },
    "ko": {
        "ORG": "조직 엔터티는 명명된 기업, 정부 또는 기타 조직 엔터티로 제한됩니다.",
        "PER": "개인 엔티티는 이름이 지정된 개인 또는 가족입니다.",
        "LOC": "위치 엔티티는 도시, 지방, 국가, 국제 지역, 수역, 산 등과 같이 정치적으로 또는 지리적으로 정의된 위치의 이름입니다.",
    },
    "zh": {
        "ORG": "组织实体仅限于命名的公司、政府或其他组织实体。",
        "PER": "个人实体被命名为个人或家庭。",
        "LOC": "位置实体是政治或地理上定义的位置的名称，例如城市、省、国家、国际区域、水体、山脉等。",
    },
    "af": {
        "ORG": "Organisasie-entiteite is beperk tot genoemde korporatiewe, regerings- of ander organisatoriese entiteite.",
        "PER": "Persoonsentiteite is genoemde persone of familie.",
        "LOC": "Liggingsentiteite is die naam van polities of geografies gedefinieerde liggings soos stede, provinsies, lande, internasionale streke, waterliggame, berge, ens.",
    },
    "ar": {
        "ORG": "تقتصر كيانات المؤسسة على كيانات مؤسسية أو حكومية أو كيانات تنظيمية أخرى مسماة.",
        "PER": "يتم تسمية كيانات الشخص كأشخاص أو عائلة.",
        "LOC": "كيانات الموقع هي اسم المواقع المحددة سياسياً أو جغرافياً مثل المدن ، والمقاطعات ، والبلدان ، والمناطق الدولية ، والمسطحات المائية ، والجبال ، إلخ.",
    },
    "bg": {
        "ORG": "Организационните единици са ограничени до наименувани корпоративни, правителствени или други организационни единици.",
        "PER": "Личните субекти са именувани лица или семейство.",
        "LOC": "Обектите на местоположението са имената на политически или географски определени местоположения като градове, провинции, държави, международни региони, водни обекти, планини и др.",
    },
    "bn": {
        "ORG": "সংস্থার সত্তাগুলি নামযুক্ত কর্পোরেট, সরকারী বা অন্যান্য সাংগঠনিক সত্তার মধ্যে সীমাবদ্ধ।",
        "PER": "ব্যক্তি সত্তার নাম ব্যক্তি বা পরিবার।",
        "LOC": "অবস্থান সত্তা হল রাজনৈতিকভাবে বা ভৌগলিকভাবে সংজ্ঞায়িত অবস্থানের নাম যেমন শহর, প্রদেশ, দেশ, আন্তর্জাতিক অঞ্চল, জলাশয়, পর্বত ইত্যাদি।",
    },
    "el": {
        "ORG": "Οι οντότητες του οργανισμού περιορίζονται σε επώνυμες εταιρικές, κυβερνητικές ή άλλες οργανωτικές οντότητες.",
        "PER": "Οι οντότητες προσώπων ονομάζονται πρόσωπα ή οικογένεια.",
        "LOC": "Οι οντότητες τοποθεσίας είναι το όνομα πολιτικά ή γεωγραφικά καθορισμένων τοποθεσιών όπως πόλεις, επαρχίες, χώρες, διεθνείς περιοχές, υδάτινα σώματα, βουνά κ.λπ.",
    },
    "et": {
        "ORG": "Organisatsiooni üksused piirduvad nimetatud ettevõtte, valitsusasutuste või muude organisatsiooniliste üksustega.",
        "PER": "Isiku entiteete nimetatakse isikuteks või perekondadeks.",
        "LOC": "Asukohaüksused on poliitiliselt või geograafiliselt määratletud asukohtade (nt linnad, provintsid, riigid, rahvusvahelised piirkonnad, veekogud, mäed jne) nimed.",
    },
    "eu": {
        "ORG": "Antolakuntza-entitateak izendatutako korporazio, gobernu edo bestelako erakunde entitateetara mugatzen dira.",
        "PER": "Pertsona-entitateak pertsona edo familia izendatuak dira.",
        "LOC": "Kokapen-entitateak politikoki edo geografikoki definitutako kokapenen izenak dira, hala nola hiriak, probintziak, herrialdeak, nazioarteko eskualdeak, ur-masak, mendiak, etab.",
    },
    "fa": {
        "ORG": "نهادهای سازمانی محدود به نهادهای سازمانی، دولتی یا سازمانی دیگر هستند.",
        "PER": "نهادهای شخصی افراد یا خانواده نامیده می شوند.",
        "LOC": "نهادهای مکان نام مکان هایی هستند که از نظر سیاسی یا جغرافیایی تعریف شده اند مانند شهرها، استان ها، کشورها، مناطق بین المللی، توده های آبی، کوه ها و غیره.",
    },
    "fi": {
        "ORG": "Organisaatiokokonaisuudet rajoittuvat nimettyihin yritys-, hallinto- tai muihin organisaatiokokonaisuuksiin.",
        "PER": "Henkilökokonaisuudet ovat nimettyjä henkilöitä tai perheitä.",
        "LOC": "Sijaintientiteetit ovat poliittisesti tai maantieteellisesti määriteltyjen paikkojen nimiä, kuten kaupunkeja, provinsseja, maita, kansainvälisiä alueita, vesistöjä, vuoria jne.",
    },
    "he": {
        "ORG": "ישויות ארגוניות מוגבלות לגופים תאגידיים, ממשלתיים או ארגוניים אחרים בעלי שם.",
        "PER": "ישויות אישיות הן אנשים או משפחה בשם.",
        "LOC": "ישויות מיקום הן שמם של מיקומים מוגדרים פוליטית או גיאוגרפית כגון ערים, מחוזות, מדינות, אזורים בינלאומיים, גופי מים, הרים וכו'.",
    },
    "hi": {
        "ORG": "संगठन निकाय नामित कॉर्पोरेट, सरकारी, या अन्य संगठनात्मक संस्थाओं तक सीमित हैं।",
        "PER": "व्यक्ति संस्थाओं का नाम व्यक्ति या परिवार है।",
        "LOC": "स्थान निकाय राजनीतिक या भौगोलिक रूप से परिभाषित स्थानों जैसे शहरों, प्रांतों, देशों, अंतर्राष्ट्रीय क्षेत्रों, जल निकायों, पहाड़ों आदि के नाम हैं।",
    },
    "hu": {
        "ORG": "A szervezeti entitások a megnevezett vállalati, kormányzati vagy egyéb szervezeti entitásokra korlátozódnak.",
        "PER": "A személy entitások megnevezett személyek vagy családok.",
        "LOC": "A hely entitások politikailag vagy földrajzilag meghatározott helyek nevei, például városok, tartományok, országok, nemzetközi régiók, víztestek, hegyek stb.",
    },
    "id": {
        "ORG": "Entitas organisasi terbatas pada nama perusahaan, pemerintah, atau entitas organisasi lainnya.",
        "PER": "Entitas orang disebut orang atau keluarga.",
        "LOC": "Entitas lokasi adalah nama lokasi yang ditentukan secara politis atau geografis seperti kota, provinsi, negara, wilayah internasional, badan air, pegunungan, dll.",
    },
    "jv": {
        "ORG": "Entitas organisasi diwatesi mung perusahaan, pemerintah, utawa entitas organisasi liyane.",
        "PER": "Entitas wong diarani wong utawa kulawarga.",
        "LOC": "Entitas lokasi yaiku jeneng lokasi sing ditemtokake sacara politis utawa geografis kayata kutha, provinsi, negara, wilayah internasional, badan banyu, gunung, lsp.",
    },
    "ka": {
        "ORG": "ორგანიზაციის ერთეულები შემოიფარგლება დასახელებული კორპორატიული, სამთავრობო ან სხვა ორგანიზაციული ერთეულებით.",
        "PER": "პირთა სუბიექტები დასახელებულია პირები ან ოჯახი.",
        "LOC": "მდებარეობის ერთეულები არის პოლიტიკურად ან გეოგრაფიულად განსაზღვრული მდებარეობების სახელები, როგორიცაა ქალაქები, პროვინციები, ქვეყნები, საერთაშორისო რეგიონები, წყლის ობიექტები, მთები და ა.შ.",
    },
    "kk": {
        "ORG": "Ұйым нысандары аталған корпоративтік, үкіметтік немесе басқа ұйымдық құрылымдармен шектеледі.",
        "PER": "Тұлға субъектілері - аталған тұлғалар немесе отбасы.",
        "LOC": "Орналасу нысандары - қалалар, провинциялар, елдер, халықаралық аймақтар, су айдындары, таулар және т.б. сияқты саяси немесе географиялық тұрғыдан анықталған орындардың атауы.",
    },
    "ml": {
        "ORG": "ഓർഗനൈസേഷൻ എന്റിറ്റികൾ പേരുള്ള കോർപ്പറേറ്റ്, ഗവൺമെന്റൽ അല്ലെങ്കിൽ മറ്റ് ഓർഗനൈസേഷണൽ എന്റിറ്റികൾക്ക് മാത്രമായി പരിമിതപ്പെടുത്തിയിരിക്കുന്നു.",
        "PER": "വ്യക്തി എന്റിറ്റികളെ വ്യക്തികൾ അല്ലെങ്കിൽ കുടുംബം എന്ന് വിളിക്കുന്നു.",
        "LOC": "നഗരങ്ങൾ, പ്രവിശ്യകൾ, രാജ്യങ്ങൾ, അന്തർദേശീയ പ്രദേശങ്ങൾ, ജലാശയങ്ങൾ, പർവതങ്ങൾ മുതലായവ പോലുള്ള രാഷ്ട്രീയമായോ ഭൂമിശാസ്ത്രപരമായോ നിർവചിക്കപ്പെട്ട സ്ഥലങ്ങളുടെ പേരാണ് ലൊക്കേഷൻ എന്റിറ്റികൾ.",
    },
    "mr": {
        "ORG": "संस्था संस्था नामांकित कॉर्पोरेट, सरकारी किंवा इतर संस्थात्मक घटकांपुरती मर्यादित आहेत.",
        "PER": "व्यक्ती संस्थांना व्यक्ती किंवा कुटुंब असे नाव दिले जाते.",
        "LOC": "स्थान संस्था म्हणजे शहरे, प्रांत, देश, आंतरराष्ट्रीय प्रदेश, पाण्याचे स्रोत, पर्वत इ. यासारख्या राजकीय किंवा भौगोलिकदृष्ट्या परिभाषित स्थानांचे नाव.",
    },
    "ms": {
        "ORG": "Entiti organisasi terhad kepada entiti korporat, kerajaan atau organisasi lain yang dinamakan.",
        "PER": "Entiti orang dinamakan orang atau keluarga.",
        "LOC": "Entiti lokasi ialah nama lokasi yang ditentukan secara politik atau geografi seperti bandar, wilayah, negara, wilayah antarabangsa, badan air, gunung, dsb.",
    },
    "my": {
        "ORG": "အဖွဲ့အစည်းဆိုင်ရာ အဖွဲ့အစည်းများကို အမည်ပေးထားသည့် ကော်ပိုရိတ်၊ အစိုးရ သို့မဟုတ် အခြားအဖွဲ့အစည်းဆိုင်ရာ အဖွဲ့အစည်းများအတွက် ကန့်သတ်ထားသည်။",
        "PER": "လူပုဂ္ဂိုလ်များကို လူပုဂ္ဂိုလ် သို့မဟုတ် မိသားစုဟု အမည်ပေးထားသည်။",
        "LOC": "တည်နေရာ အဖွဲ့အစည်းများသည် မြို့များ၊ ပြည်နယ်များ၊ နိုင်ငံများ၊ နိုင်ငံတကာ ဒေသများ၊ ရေပြင်များ၊ တောင်များ စသည်တို့ကဲ့သို့ နိုင်ငံရေးအရ သို့မဟုတ် ပထဝီဝင်အရ သတ်မှတ်ထားသော တည်နေရာများ၏ အမည်များ ဖြစ်ပါသည်။",
    },
    "pt": {
        "ORG": "As entidades da organização estão limitadas a entidades corporativas, governamentais ou outras entidades organizacionais nomeadas.",
        "PER": "As entidades de pessoa são pessoas nomeadas ou família.",
        "LOC": "As entidades de localização são o nome de locais definidos política ou geograficamente, como cidades, províncias, países, regiões internacionais, corpos d'água, montanhas, etc.",
    },
    "ru": {
        "ORG": "Организационные сущности ограничены названными корпоративными, государственными или другими организационными единицами.",
        "PER": "Сущности-лица называются лицами или семьями.",
        "LOC": "Объекты местоположения — это названия политически или географически определенных местоположений, таких как города, провинции, страны, международные регионы, водоемы, горы и т. д.",
    },
    "sw": {
        "ORG": "Huluki za shirika zinapatikana tu kwa mashirika yaliyotajwa, ya serikali au mashirika mengine.",
        "PER": "Vyombo vya watu huitwa watu au familia.",
        "LOC": "Huluki za eneo ni jina la maeneo yaliyoainishwa kisiasa au kijiografia kama vile miji, mikoa, nchi, maeneo ya kimataifa, maeneo ya maji, milima, n.k.",
    },
    "ta": {
        "ORG": "நிறுவன நிறுவனங்கள் பெயரிடப்பட்ட கார்ப்பரேட், அரசு அல்லது பிற நிறுவன நிறுவனங்களுக்கு மட்டுமே.",
        "PER": "தனிநபர் நிறுவனங்கள் நபர்கள் அல்லது குடும்பம் என்று பெயரிடப்படுகின்றன.",
        "LOC": "நகரங்கள், மாகாணங்கள், நாடுகள், சர்வதேச பகுதிகள், நீர்நிலைகள், மலைகள் போன்ற அரசியல் ரீதியாக அல்லது புவியியல் ரீதியாக வரையறுக்கப்பட்ட இடங்களின் பெயர்தான் இருப்பிட நிறுவனங்கள்.",
    },
    "te": {
        "ORG": "సంస్థ సంస్థలు పేరు పెట్టబడిన కార్పొరేట్, ప్రభుత్వ లేదా ఇతర సంస్థాగత సంస్థలకు పరిమితం చేయబడ్డాయి.",
        "PER": "వ్యక్తి ఎంటిటీలు వ్యక్తులు లేదా కుటుంబం అని పేరు పెట్టారు.",
        "LOC": "నగరాలు, ప్రావిన్సులు, దేశాలు, అంతర్జాతీయ ప్రాంతాలు, నీటి వనరులు, పర్వతాలు మొదలైన రాజకీయంగా లేదా భౌగోళికంగా నిర్వచించబడిన స్థానాల పేరు స్థాన ఎంటిటీలు.",
    },
    "th": {
        "ORG": "เอนทิตีองค์กรจำกัดเฉพาะองค์กรที่มีชื่อ หน่วยงานของรัฐ หรือองค์กรอื่นๆ",
        "PER": "นิติบุคคลชื่อบุคคลหรือครอบครัว",
        "LOC": "หน่วยงานที่ตั้งคือชื่อของสถานที่ที่กำหนดทางการเมืองหรือทางภูมิศาสตร์ เช่น เมือง จังหวัด ประเทศ ภูมิภาคระหว่างประเทศ แหล่งน้ำ ภูเขา ฯลฯ",
    },
    "tl": {
        "ORG": "Limitado ang mga entity ng organisasyon sa mga pinangalanang corporate, government, o iba pang entity ng organisasyon.",
        "PER": "Ang mga entidad ng tao ay pinangalanang mga tao o pamilya.",
        "LOC": "Ang mga entity ng lokasyon ay ang pangalan ng mga lokasyong tinukoy sa pulitika o heograpiya gaya ng mga lungsod, lalawigan, bansa, internasyonal na rehiyon, anyong tubig, bundok, atbp.",
    },
    "tr": {
        "ORG": "Kuruluş varlıkları, adlandırılmış kurumsal, resmi veya diğer kurumsal kuruluşlarla sınırlıdır.",
        "PER": "Kişi varlıkları kişiler veya aile olarak adlandırılır.",
        "LOC": "Konum varlıkları, şehirler, iller, ülkeler, uluslararası bölgeler, su kütleleri, dağlar vb. gibi siyasi veya coğrafi olarak tanımlanmış konumların adıdır.",
    },
    "ur": {
        "ORG": "تنظیمی ادارے نام کارپوریٹ، سرکاری، یا دیگر تنظیمی اداروں تک محدود ہیں۔",
        "PER": "شخصی اداروں کا نام افراد یا خاندان ہوتا ہے۔",
        "LOC": "مقام کے ادارے سیاسی یا جغرافیائی طور پر متعین مقامات کا نام ہیں جیسے شہر، صوبے، ممالک، بین الاقوامی علاقے، آبی ذخائر، پہاڑ وغیرہ۔",
    },
    "yo": {
        "ORG": "Awọn ile-iṣẹ ti ile-iṣẹ ni opin si ajọ-ajọpọ, ti ijọba, tabi awọn ile-iṣẹ eto miiran.",
        "PER": "Awọn ile-iṣẹ ti eniyan ni orukọ eniyan tabi idile.",
        "LOC": "Awọn ile-iṣẹ ipo jẹ orukọ awọn ipo iṣelu tabi ti agbegbe gẹgẹbi awọn ilu, awọn agbegbe, awọn orilẹ-ede, awọn agbegbe agbaye, awọn ara omi, awọn oke-nla, ati bẹbẹ lọ.",
    },
}

# CoNLL's fourth label. es: PMR NER/Data/conll/es-mrc-ner.test. en: PMR NER/Data/conll2mrc.py has
# "examples of miscellaneous entities include events, nationalities, products and works of art."
# for the English PMR; the mPMR English training file is not in the repository, so we capitalise
# it as wikiann2mrc.py's English ORG/PER/LOC capitalise conll2mrc.py's (and as the es test file's
# "Ejemplos …" does). No de / nl translation is published: those languages fall back to English.
CONLL_MISC_DESCRIPTIONS: dict[str, str] = {
    "en": "Examples of miscellaneous entities include events, nationalities, products and works of art.",
    "es": "Ejemplos de entidades misceláneas incluyen eventos, nacionalidades, productos y obras de arte.",
}

# PMR ABSA/Data/res2mrc.py, conll2mrc(): `label_details` per language (the same texts are in
# ABSA/Data/rest/{lang}-mrc-absa.{train,dev,test}). Lower-case "for …" in English, as written.
ABSA_DESCRIPTIONS: dict[str, dict[str, str]] = {
    "en": {"POS": "for aspect terms of positive sentiment.",
           "NEG": "for aspect terms of negative sentiment.",
           "NEU": "for aspect terms of neutral sentiment."},
    "fr": {"POS": "pour les termes d'aspect du sentiment positif.",
           "NEG": "pour les termes d'aspect du sentiment négatif.",
           "NEU": "pour les termes d'aspect du sentiment neutre."},
    "es": {"POS": "para términos de aspecto de sentimiento positivo.",
           "NEG": "para términos de aspecto de sentimiento negativo.",
           "NEU": "para términos de aspecto de sentimiento neutral."},
    "nl": {"POS": "voor aspect termen van positief sentiment.",
           "NEG": "voor aspect termen van negatief sentiment.",
           "NEU": "voor aspect termen van neutraal sentiment."},
    "ru": {"POS": "для аспектов положительного настроения.",
           "NEG": "для аспектов отрицательного настроения.",
           "NEU": "для аспектов нейтрального настроения."},
    "tr": {"POS": "Pozitif duyguların görünüş açısından.",
           "NEG": "olumsuz duyguların en boy terimleri için.",
           "NEU": "nötr duygunun görünüş terimleri için."},
}

# PMR NLI/mNLI/data.py, NLIDataset.get_data(): the whole query text per label, in its order
# (the order only breaks ties of the argmax); PAWS-X label 0 / 1 reuse the XNLI texts.
_NEUTRAL = ("neutral. The hypothesis is a sentence with mostly the same lexical items as the "
            "premise but a different meaning.")
_ENTAILMENT = "entailment. The hypothesis is a sentence with a similar meaning as the premise."
_CONTRADICTION = ("contradiction. The hypothesis is a sentence with a contradictory meaning to "
                  "the premise.")
PAIR_QUERIES: dict[str, dict[str, str]] = {
    "xnli": {"neutral": _NEUTRAL, "entailment": _ENTAILMENT, "contradiction": _CONTRADICTION},
    "pawsx": {"0": _CONTRADICTION, "1": _ENTAILMENT},
}
# PMR NLI/mNLI/data.py: passage = "Hypothesis: " + item[0] + " Premise: " + item[1]
HYPOTHESIS_PREFIX = "Hypothesis: "
PREMISE_PREFIX = " Premise: "


def tagging_queries(kind: str, lang: str = "en") -> tuple[dict[str, str], str]:
    """({label: query} in the reference's label order, language of the texts) for `kind`
    "wikiann" (ORG, PER, LOC), "conll" (+ MISC) or "absa" (POS, NEG, NEU). The language is
    `lang` where the reference translates every label into it, else "en"."""
    if kind not in TAGGING_KINDS:
        raise ValueError(f"kind must be one of {TAGGING_KINDS}, got {kind!r}")
    used = lang if _has_translation(kind, lang) else "en"
    if kind == "absa":
        descriptions = ABSA_DESCRIPTIONS[used]
    else:
        descriptions = dict(NER_DESCRIPTIONS[used])
        if kind == "conll":
            descriptions["MISC"] = CONLL_MISC_DESCRIPTIONS[used]
    return {label: label_query(label, text) for label, text in descriptions.items()}, used


def _has_translation(kind: str, lang: str) -> bool:
    if kind == "absa":
        return lang in ABSA_DESCRIPTIONS
    return lang in NER_DESCRIPTIONS and (kind == "wikiann" or lang in CONLL_MISC_DESCRIPTIONS)


WIKIANN_QUERIES = tagging_queries("wikiann")[0]
CONLL_QUERIES = tagging_queries("conll")[0]
ABSA_QUERIES = tagging_queries("absa")[0]
